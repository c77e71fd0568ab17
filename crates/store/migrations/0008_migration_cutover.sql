-- Environment migration cut-over (SPEC §7), on the migration row so that deleting a
-- migration also ends what it started. Portable SQL, as version 1.
--
-- destination_paths: the environment's paths on the destination (JSON object with rest,
--   soap, soap12, odata), written when Migrate starts the cut-over.
-- cutover_at: when Migrate started; while the migration is not completed the destination
--   gateway serves the environment too (make-before-break).
-- redirect_*: after a completed move, the source gateway answers the environment's old
--   paths (JSON object as above) with 308 to redirect_location until redirect_until.
ALTER TABLE environment_migrations ADD COLUMN destination_paths TEXT;
ALTER TABLE environment_migrations ADD COLUMN cutover_at BIGINT;
ALTER TABLE environment_migrations ADD COLUMN redirect_paths TEXT;
ALTER TABLE environment_migrations ADD COLUMN redirect_location TEXT;
ALTER TABLE environment_migrations ADD COLUMN redirect_until BIGINT;
CREATE INDEX environment_migrations_cutover_idx
    ON environment_migrations (to_gateway_id) WHERE cutover_at IS NOT NULL AND completed_at IS NULL;
CREATE INDEX environment_migrations_redirect_idx
    ON environment_migrations (from_gateway_id) WHERE redirect_until IS NOT NULL;
