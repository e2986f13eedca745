DROP TABLE handoff_links;
