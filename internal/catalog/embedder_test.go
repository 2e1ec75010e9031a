package catalog

import "testing"

// testEmbedder returns the embedder the ranking tests use.
func testEmbedder(t testing.TB) Embedder {
	return &hashEmbedder{dim: 512}
}
