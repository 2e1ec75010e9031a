package embed

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// goldenFile is testdata/golden.json, written by testdata/gen_golden.mjs.
type goldenFile struct {
	Model string `json:"model"`
	Cases []struct {
		Text   string    `json:"text"`
		Tokens []int     `json:"tokens"`
		Vector []float32 `json:"vector"`
	} `json:"cases"`
}

func readGolden(t testing.TB) goldenFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("golden.json: no cases")
	}
	return g
}

var (
	testModelOnce sync.Once
	testModel     *Model
	testModelErr  error
)

// loadTestModel installs the model into a cache shared across test runs
// (MCP_CONDUCTOR_CACHE, else <user cache>/mcp-conductor-test) and loads it
// once per test binary. Without npm or the registry the test is skipped,
// except under CI=true, where the model is required.
func loadTestModel(t testing.TB) *Model {
	t.Helper()
	testModelOnce.Do(func() {
		cache := os.Getenv("MCP_CONDUCTOR_CACHE")
		if cache == "" {
			base, err := os.UserCacheDir()
			if err != nil {
				testModelErr = err
				return
			}
			cache = filepath.Join(base, "mcp-conductor-test")
		}
		// An installed model is used as it is: Install would write the
		// weights file into the shared cache.
		dir := DefaultDir(cache)
		if !installed(dir) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var err error
			if dir, err = Install(ctx, cache, InstallOptions{}); err != nil {
				testModelErr = err
				return
			}
		}
		testModel, testModelErr = Load(dir)
	})
	if testModelErr != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("embedding model unavailable (set CI=true to fail instead): %v", testModelErr)
		}
		t.Fatalf("embedding model: %v", testModelErr)
	}
	return testModel
}

func TestTokenizerGolden(t *testing.T) {
	m := loadTestModel(t)
	for _, c := range readGolden(t).Cases {
		got := m.tok.encode(c.Text)
		if diff := cmp.Diff(c.Tokens, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("encode(%q) mismatch (-want +got):\n%s", c.Text, diff)
		}
	}
}

func TestEmbedGolden(t *testing.T) {
	m := loadTestModel(t)
	g := readGolden(t)
	texts := make([]string, len(g.Cases))
	for i, c := range g.Cases {
		texts[i] = c.Text
	}
	got, err := m.Embed(texts)
	if err != nil {
		t.Fatal(err)
	}
	const tol = 1e-4
	var worst float64
	for i, c := range g.Cases {
		if len(got[i]) != len(c.Vector) {
			t.Fatalf("Embed(%q): %d values, want %d", c.Text, len(got[i]), len(c.Vector))
		}
		var maxDiff, norm float64
		for k, want := range c.Vector {
			maxDiff = max(maxDiff, math.Abs(float64(got[i][k]-want)))
			norm += float64(got[i][k]) * float64(got[i][k])
		}
		worst = max(worst, maxDiff)
		if maxDiff > tol {
			t.Errorf("Embed(%q): max abs diff %.3g from TF.js, want <= %g", c.Text, maxDiff, tol)
		}
		if math.Abs(norm-1) > 1e-5 {
			t.Errorf("Embed(%q): |v|² = %v, want 1", c.Text, norm)
		}
	}
	t.Logf("%d texts, max abs diff from TF.js %.3g", len(g.Cases), worst)
}

func TestModelInfo(t *testing.T) {
	m := loadTestModel(t)
	if m.Dim() != 512 || m.MaxTokens() != 128 || m.Name() != "use-lite-0.2.0" {
		t.Errorf("Dim, MaxTokens, Name = %d, %d, %q; want 512, 128, use-lite-0.2.0", m.Dim(), m.MaxTokens(), m.Name())
	}
	if got := m.TokenCount("hello world"); got != 3 {
		t.Errorf("TokenCount(hello world) = %d, want 3", got)
	}
}

func TestLoadMissing(t *testing.T) {
	for _, q := range []bool{false, true} {
		_, err := LoadWith(t.TempDir(), LoadOptions{Quantize: q})
		if !errors.Is(err, ErrModelMissing) {
			t.Errorf("LoadWith(empty dir, Quantize %v) = %v, want ErrModelMissing", q, err)
		}
	}
}
