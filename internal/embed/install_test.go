package embed

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestModelFile(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"package/LICENSE", "LICENSE"},
		{"package/dist/model.json", "model.json"},
		{"package/dist/vocab.json", "vocab.json"},
		{"package/dist/group1-shard1of7", "group1-shard1of7"},
		{"package/dist/index.js", ""},
		{"package/package.json", ""},
		{"package/dist/../group1-shard1of7", ""},
		{"package/dist/sub/group1-shard1of7", ""},
		{"/etc/passwd", ""},
	} {
		if got := modelFile(tc.in); got != tc.want {
			t.Errorf("modelFile(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestInstallRejectsWrongTarball(t *testing.T) {
	cache := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.tgz")
	if err := os.WriteFile(bad, []byte("not the model"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Install(context.Background(), cache, InstallOptions{Tarball: bad})
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Install(bad tarball) = %v, want a sha256 error", err)
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "models"))
	if len(entries) != 0 {
		t.Errorf("Install(bad tarball) left %v in the cache", entries)
	}
	if _, err := Load(DefaultDir(cache)); err == nil {
		t.Error("Load after failed Install succeeded")
	}
}

// TestInstallConcurrent installs from one tarball into a fresh cache from
// several goroutines: all get the same complete directory, with the
// license and notice, and no temporary directories remain.
func TestInstallConcurrent(t *testing.T) {
	loadTestModel(t) // skips (or fails under CI) without npm
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	tarball, err := npmPack(ctx, "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	dirs := make([]string, 3)
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Go(func() {
			d, err := Install(ctx, cache, InstallOptions{Tarball: tarball})
			if err != nil {
				t.Error(err)
			}
			dirs[i] = d
		})
	}
	wg.Wait()
	for _, d := range dirs {
		if d != DefaultDir(cache) {
			t.Errorf("Install = %q, want %q", d, DefaultDir(cache))
		}
	}
	for _, f := range []string{"LICENSE", "NOTICE", "model.json", "vocab.json", "group1-shard7of7"} {
		if _, err := os.Stat(filepath.Join(DefaultDir(cache), f)); err != nil {
			t.Error(err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(cache, "models"))
	if len(entries) != 1 {
		t.Errorf("cache holds %d entries, want only %s", len(entries), ModelName)
	}
	if _, err := Load(DefaultDir(cache)); err != nil {
		t.Error(err)
	}
}
