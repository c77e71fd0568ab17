-- Switchyard schema, version 4: what deployment status is derived from (issue 8).
-- Portable SQL, as version 1.

-- The gateway a deployment was last published to and the first configuration generation of
-- that gateway that contained it (both NULL while it is on no published configuration). The
-- deployment is `pending` until every online node of the gateway has applied that generation.
ALTER TABLE deployments ADD COLUMN published_gateway_id TEXT;
ALTER TABLE deployments ADD COLUMN published_generation BIGINT;
