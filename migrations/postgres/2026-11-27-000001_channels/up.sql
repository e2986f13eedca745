-- Alerts also travel by email and signed webhook. An organisation's webhook is not a person:
-- its outbox rows have no recipient.
ALTER TABLE notifications ALTER COLUMN recipient_id DROP NOT NULL;
