-- Each organisation's time zone (an IANA name): the times people read in messages and in an
-- incident's evidence record are local to it, with the zone's abbreviation.
ALTER TABLE organisations ADD COLUMN timezone TEXT NOT NULL DEFAULT 'Europe/London';
