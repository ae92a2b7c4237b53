-- GET /v1/models finds an endpoint by its key alone: index the key hash.
CREATE INDEX IF NOT EXISTS endpoints_api_key_hash ON endpoints (api_key_hash);
