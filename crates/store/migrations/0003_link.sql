-- Switchyard schema, version 3: what the platform–node link needs (issue 4).
-- Portable SQL, as version 1.

-- SHA-256 of the last published gateway configuration (without its generation), so a
-- change that does not alter the compiled configuration does not bump the generation; and
-- when that generation was published (the clock of CONFIG_OUT_OF_SYNC against it).
ALTER TABLE gateways ADD COLUMN config_digest TEXT;
ALTER TABLE gateways ADD COLUMN config_published_at BIGINT;

-- The platform's status record of a node (model::status::NodeRecord as JSON, owned by the
-- platform), so node states survive a platform restart and are shared between processes.
ALTER TABLE nodes ADD COLUMN status_record TEXT;
