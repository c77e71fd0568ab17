-- Switchyard schema, version 2: console sessions, when nodes reported their start-up
-- properties, and environment migrations (SPEC §7). Portable SQL, as version 1.

CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    token_hash    TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);
CREATE UNIQUE INDEX sessions_hash_key ON sessions (token_hash);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

ALTER TABLE nodes ADD COLUMN startup_reported_at BIGINT;

CREATE TABLE environment_migrations (
    id               TEXT PRIMARY KEY,
    account_id       TEXT NOT NULL,
    environment_id   TEXT NOT NULL,
    -- The environment's gateway when the migration was created; NULL when unattached.
    from_gateway_id  TEXT,
    -- NULL when moving the environment off its gateway.
    to_gateway_id    TEXT,
    -- Step state (destination paths, check results, warnings) as JSON owned by the platform.
    state            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    -- OK, OK_WITH_WARNINGS or ERROR once completed.
    result           TEXT,
    FOREIGN KEY (environment_id, account_id) REFERENCES environments (id, account_id)
        ON DELETE CASCADE,
    FOREIGN KEY (from_gateway_id, account_id) REFERENCES gateways (id, account_id),
    FOREIGN KEY (to_gateway_id, account_id) REFERENCES gateways (id, account_id)
);
-- At most one migration in progress per environment.
CREATE UNIQUE INDEX environment_migrations_in_progress_key
    ON environment_migrations (environment_id) WHERE completed_at IS NULL;
CREATE INDEX environment_migrations_account_idx ON environment_migrations (account_id);
