package toolchain

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeDeno writes a script that prints a Deno version banner.
func fakeDeno(t *testing.T, dir, version string) string {
	t.Helper()
	p := filepath.Join(dir, "deno")
	script := "#!/bin/sh\necho 'deno " + version + " (stable, release, x86_64-unknown-linux-gnu)'\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVersionLess(t *testing.T) {
	for _, tc := range []struct {
		a, b Version
		want bool
	}{
		{Version{2, 8, 0}, Version{2, 8, 1}, true},
		{Version{2, 8, 1}, Version{2, 8, 1}, false},
		{Version{2, 9, 0}, Version{2, 8, 9}, false},
		{Version{1, 99, 99}, Version{2, 0, 0}, true},
	} {
		if got := tc.a.Less(tc.b); got != tc.want {
			t.Errorf("%v.Less(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestFindDeno(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("PATH", dir) // no other deno is found

	good := fakeDeno(t, t.TempDir(), "2.9.6")
	d, err := FindDeno(ctx, good, "")
	if err != nil || d.Version != (Version{2, 9, 6}) || d.Source != "MCP_CONDUCTOR_DENO" {
		t.Fatalf("FindDeno(explicit good) = %+v, %v", d, err)
	}

	old := fakeDeno(t, t.TempDir(), "2.7.0")
	if _, err := FindDeno(ctx, old, ""); err == nil || !strings.Contains(err.Error(), "2.7.0") || !strings.Contains(err.Error(), "conductor setup") {
		t.Errorf("FindDeno(explicit old) error = %v, want one naming the version and the fix", err)
	}
	if _, err := FindDeno(ctx, filepath.Join(dir, "missing"), ""); err == nil || !strings.Contains(err.Error(), "MCP_CONDUCTOR_DENO") {
		t.Errorf("FindDeno(explicit missing) error = %v, want one naming MCP_CONDUCTOR_DENO", err)
	}

	// PATH holds an old Deno, the cache a good one: the cache wins.
	fakeDeno(t, dir, "2.0.0")
	cache := t.TempDir()
	cached := CachedDenoPath(cache)
	if err := os.MkdirAll(filepath.Dir(cached), 0o755); err != nil {
		t.Fatal(err)
	}
	fakeDeno(t, filepath.Dir(cached), "2.9.6")
	d, err = FindDeno(ctx, "", cache)
	if err != nil || d.Source != "cache" {
		t.Fatalf("FindDeno(old on PATH, good in cache) = %+v, %v", d, err)
	}

	// Nothing usable: the error says how to fix it and what was wrong.
	_, err = FindDeno(ctx, "", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "conductor setup") || !strings.Contains(err.Error(), "2.0.0") {
		t.Errorf("FindDeno(nothing usable) error = %v", err)
	}
}
