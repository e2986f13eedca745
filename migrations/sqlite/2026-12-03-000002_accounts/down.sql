ALTER TABLE users DROP COLUMN language;
ALTER TABLE users DROP COLUMN webhook_secret;
