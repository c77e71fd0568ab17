-- Switchyard schema, version 1. Portable SQL: the same file runs on SQLite and PostgreSQL.
--
-- Conventions (see crates/store/src/lib.rs):
--   * ids are TEXT (hyphenated lowercase UUIDs, v7 so they sort by creation time);
--   * instants are BIGINT milliseconds since the Unix epoch (model::Timestamp);
--   * flags are BOOLEAN; structured settings are JSON in TEXT columns;
--   * tenant tables carry account_id, and references between tenant objects go through
--     composite foreign keys (id, account_id) so a row can never point into another account;
--   * unique indexes have stable names that crates/store/src/error.rs maps to Conflict kinds.

CREATE TABLE accounts (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX accounts_name_key ON accounts (lower(name));

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    -- NULL for a platform administrator.
    account_id      TEXT REFERENCES accounts (id),
    name            TEXT NOT NULL,
    email           TEXT,
    role            TEXT NOT NULL,
    platform_admin  BOOLEAN NOT NULL,
    -- Argon2id PHC string; NULL for users who only use tokens.
    password_hash   TEXT,
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));
CREATE INDEX users_account_idx ON users (account_id);

CREATE TABLE api_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    token_hash    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    revoked_at    BIGINT,
    last_used_at  BIGINT
);
CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

CREATE TABLE install_tokens (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    token_hash  TEXT NOT NULL,
    created_by  TEXT REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE UNIQUE INDEX install_tokens_hash_key ON install_tokens (token_hash);
CREATE INDEX install_tokens_account_idx ON install_tokens (account_id);

CREATE TABLE gateways (
    id                 TEXT PRIMARY KEY,
    account_id         TEXT NOT NULL REFERENCES accounts (id),
    name               TEXT NOT NULL,
    public_url         TEXT,
    bind_address       TEXT NOT NULL,
    -- GatewaySettings as JSON (crates/store/src/json.rs).
    settings           TEXT NOT NULL,
    -- Configuration generation: only ever increases (ARCHITECTURE.md invariant).
    config_generation  BIGINT NOT NULL DEFAULT 0,
    -- Current status as last evaluated by the platform; history in gateway_status_history.
    status_state       TEXT,
    status_variant     TEXT,
    status_since       BIGINT,
    created_at         BIGINT NOT NULL,
    deleted_at         BIGINT,
    UNIQUE (id, account_id)
);
-- A name is unique among the account's non-deleted gateways, case-insensitively.
CREATE UNIQUE INDEX gateways_name_key ON gateways (account_id, lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX gateways_account_idx ON gateways (account_id);

CREATE TABLE gateway_status_history (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    gateway_id  TEXT NOT NULL,
    state       TEXT NOT NULL,
    variant     TEXT,
    at          BIGINT NOT NULL,
    FOREIGN KEY (gateway_id, account_id) REFERENCES gateways (id, account_id)
);
CREATE INDEX gateway_status_history_gateway_idx ON gateway_status_history (gateway_id, at);

CREATE TABLE nodes (
    id                  TEXT PRIMARY KEY,
    account_id          TEXT NOT NULL,
    gateway_id          TEXT NOT NULL,
    host_name           TEXT NOT NULL,
    address             TEXT,
    version             TEXT NOT NULL,
    joined_at           BIGINT NOT NULL,
    last_seen           BIGINT,
    applied_generation  BIGINT,
    -- What the node said last (starting, online, stopping, stopped, ...) and when.
    reported_state      TEXT,
    reported_at         BIGINT,
    -- Start-up properties as reported by the node (JSON), and when.
    startup_properties  TEXT,
    FOREIGN KEY (gateway_id, account_id) REFERENCES gateways (id, account_id)
);
CREATE INDEX nodes_gateway_idx ON nodes (gateway_id);
CREATE INDEX nodes_account_idx ON nodes (account_id);

CREATE TABLE node_credentials (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    gateway_id  TEXT NOT NULL,
    node_id     TEXT,
    token_hash  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    FOREIGN KEY (gateway_id, account_id) REFERENCES gateways (id, account_id)
);
CREATE UNIQUE INDEX node_credentials_hash_key ON node_credentials (token_hash);
CREATE INDEX node_credentials_gateway_idx ON node_credentials (gateway_id);

CREATE TABLE environments (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    name            TEXT NOT NULL,
    classification  TEXT NOT NULL,
    -- NULL when attached to no gateway. MATCH SIMPLE: the composite key is only checked
    -- when gateway_id is set.
    gateway_id      TEXT,
    path_rest       TEXT NOT NULL,
    path_soap       TEXT NOT NULL,
    path_soap12     TEXT NOT NULL,
    path_odata      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    UNIQUE (id, account_id),
    FOREIGN KEY (gateway_id, account_id) REFERENCES gateways (id, account_id)
);
CREATE UNIQUE INDEX environments_name_key ON environments (account_id, lower(name));
CREATE INDEX environments_gateway_idx ON environments (gateway_id);

CREATE TABLE apis (
    id                TEXT PRIMARY KEY,
    account_id        TEXT NOT NULL REFERENCES accounts (id),
    name              TEXT NOT NULL,
    version           TEXT NOT NULL,
    api_type          TEXT NOT NULL,
    base_path         TEXT NOT NULL,
    -- JSON array of upstream target URLs.
    upstream_targets  TEXT NOT NULL,
    health_check_url  TEXT,
    -- JSON ExecutionSettings override, NULL when the gateway defaults apply.
    execution         TEXT,
    created_at        BIGINT NOT NULL,
    UNIQUE (id, account_id)
);
CREATE UNIQUE INDEX apis_name_version_key ON apis (account_id, lower(name), version);

CREATE TABLE deployments (
    id              TEXT PRIMARY KEY,
    account_id      TEXT NOT NULL,
    api_id          TEXT NOT NULL,
    environment_id  TEXT NOT NULL,
    custom_path     TEXT,
    status          TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    FOREIGN KEY (api_id, account_id) REFERENCES apis (id, account_id) ON DELETE CASCADE,
    FOREIGN KEY (environment_id, account_id) REFERENCES environments (id, account_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX deployments_api_environment_key ON deployments (api_id, environment_id);
CREATE INDEX deployments_environment_idx ON deployments (environment_id);

CREATE TABLE issues (
    id          TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    gateway_id  TEXT NOT NULL,
    node_id     TEXT,
    code        TEXT NOT NULL,
    severity    TEXT NOT NULL,
    message     TEXT NOT NULL,
    details     TEXT NOT NULL,
    first_seen  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    cleared_at  BIGINT,
    FOREIGN KEY (gateway_id, account_id) REFERENCES gateways (id, account_id)
);
CREATE INDEX issues_active_idx ON issues (account_id, gateway_id) WHERE cleared_at IS NULL;

CREATE TABLE audit_records (
    id           TEXT PRIMARY KEY,
    -- NULL for platform-level actions outside any account. No foreign key on purpose:
    -- recording an audit entry must never fail because of what it describes.
    account_id   TEXT,
    actor_kind   TEXT NOT NULL,
    actor_id     TEXT,
    action       TEXT NOT NULL,
    target_kind  TEXT,
    target_id    TEXT,
    result       TEXT NOT NULL,
    details      TEXT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX audit_records_account_idx ON audit_records (account_id, id);
