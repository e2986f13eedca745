-- Each personal webhook is signed with its owner's own secret (shown once when the URL is
-- set). Webhooks set before this have none and are not delivered until saved again.
ALTER TABLE users ADD COLUMN webhook_secret TEXT;
-- The language a user reads alerts in: `en` or `cy`.
ALTER TABLE users ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
