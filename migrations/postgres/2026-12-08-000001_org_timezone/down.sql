ALTER TABLE organisations DROP COLUMN timezone;
