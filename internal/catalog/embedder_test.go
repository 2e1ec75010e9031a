package catalog

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mcp-conductor/conductor/internal/embed"
)

// useLite adapts *embed.Model to Embedder (and TokenCounter, so long tool
// texts are split by the model's own token count).
type useLite struct{ m *embed.Model }

func (u useLite) Name() string            { return u.m.Name() }
func (u useLite) Dim() int                { return u.m.Dim() }
func (u useLite) MaxTokens() int          { return u.m.MaxTokens() }
func (u useLite) TokenCount(s string) int { return u.m.TokenCount(s) }
func (u useLite) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return u.m.Embed(texts)
}

var (
	modelOnce sync.Once
	model     *embed.Model
	modelErr  error
)

// realEmbedder installs USE-lite into the shared test cache
// (MCP_CONDUCTOR_CACHE, else <user cache>/mcp-conductor-test, as
// internal/embed's tests do) and loads it once. Without npm or the
// registry the calling test is skipped, except under CI=true.
func realEmbedder(t testing.TB) Embedder {
	t.Helper()
	modelOnce.Do(func() {
		cache := os.Getenv("MCP_CONDUCTOR_CACHE")
		if cache == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				modelErr = err
				return
			}
			cache = filepath.Join(base, "mcp-conductor-test")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		dir, err := embed.Install(ctx, cache, embed.InstallOptions{})
		if err != nil {
			modelErr = err
			return
		}
		modelDir = dir
		model, modelErr = embed.Load(dir)
	})
	if modelErr != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("embedding model unavailable (set CI=true to fail instead): %v", modelErr)
		}
		t.Fatalf("embedding model: %v", modelErr)
	}
	return useLite{model}
}

var (
	modelDir  string
	int8Once  sync.Once
	int8Model *embed.Model
	int8Err   error
)

// int8Embedder is the model as the conductor loads it (int8 weights,
// mapped from the weights file when it can be).
func int8Embedder(t testing.TB) Embedder {
	t.Helper()
	realEmbedder(t) // installs the model, or skips
	int8Once.Do(func() {
		int8Model, int8Err = embed.LoadWith(modelDir, embed.LoadOptions{Quantize: true})
	})
	if int8Err != nil {
		t.Fatalf("int8 model: %v", int8Err)
	}
	return useLite{int8Model}
}

// testEmbedder returns the embedder the ranking tests use: the real model.
func testEmbedder(t testing.TB) Embedder { return realEmbedder(t) }
