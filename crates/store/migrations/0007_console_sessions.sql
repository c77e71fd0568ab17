-- Switchyard schema, version 7: console sessions remember when they were last used, so a
-- session ends after a time of inactivity (idle expiry) as well as at `expires_at`
-- (absolute expiry). NULL: not used since it was created.

ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT;
