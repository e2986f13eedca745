DROP TABLE alert_events;
