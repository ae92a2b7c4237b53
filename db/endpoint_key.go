package db

import "context"

// EndpointByKeyHash returns the live endpoint whose API key hashes to keyHash (hex SHA-256),
// or ErrNotFound. The OpenAI facade uses it to answer GET /v1/models for a key alone.
// There is no index on api_key_hash: the table holds one row per endpoint and the lookup
// is rare (SDKs list models once).
func (s *Store) EndpointByKeyHash(ctx context.Context, keyHash string) (*Endpoint, error) {
	return s.oneEndpoint(ctx, `SELECT `+endpointCols+` FROM endpoints WHERE api_key_hash = ? AND deleted_at IS NULL`, keyHash)
}
