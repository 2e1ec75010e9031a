package embed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// copyModel copies the model files of dir, without any weights file, into
// a temporary directory, for tests that write there: the shared cache gets
// nothing.
func copyModel(t testing.TB, dir string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "model")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name() == WeightsFile || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := copyFile(filepath.Join(dst, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// testModelDir is a fresh copy of the test model's files.
func testModelDir(t testing.TB) string {
	t.Helper()
	if !weightsFileOK {
		t.Skip("no weights file on this platform")
	}
	return copyModel(t, loadTestModel(t).dir)
}

// loadQ loads dir quantized, through the weights file or not.
func loadQ(t testing.TB, dir string, file bool) *Model {
	t.Helper()
	m, err := LoadWith(dir, LoadOptions{Quantize: true, noFile: !file})
	if err != nil {
		t.Fatalf("LoadWith(%s, file %v): %v", dir, file, err)
	}
	return m
}

// fingerprintOf sums the vectors m gives for the golden texts, a long text
// and the empty text, bit for bit.
func fingerprintOf(t testing.TB, m *Model) string {
	t.Helper()
	var texts []string
	for _, c := range readGolden(t).Cases {
		texts = append(texts, c.Text)
	}
	texts = append(texts, "", "list_directory: List the files in a directory")
	vs, err := m.Embed(texts)
	if err != nil {
		t.Fatal(err)
	}
	long, err := m.EmbedLong(strings.Repeat("Read the complete contents of a file from the file system. ", 30))
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, v := range append(vs, long) {
		binary.Write(h, binary.LittleEndian, v)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sameModel fails unless a and b hold the same numbers and values, bit for
// bit, and embed alike.
func sameModel(t *testing.T, a, b *Model) {
	t.Helper()
	as, al := a.fields()
	bs, bl := b.fields()
	if len(as) != len(bs) || len(al) != len(bl) {
		t.Fatalf("fields: %d numbers and %d slices vs %d and %d", len(as), len(al), len(bs), len(bl))
	}
	for i := range as {
		var ga, gb string
		if as[i].i != nil {
			ga, gb = fmt.Sprint(*as[i].i), fmt.Sprint(*bs[i].i)
		} else {
			ga, gb = fmt.Sprintf("%#x", math.Float32bits(*as[i].f)), fmt.Sprintf("%#x", math.Float32bits(*bs[i].f))
		}
		if ga != gb {
			t.Errorf("%s = %s, want %s", as[i].name, gb, ga)
		}
	}
	for i := range al {
		if !bytes.Equal(al[i].bytes(), bl[i].bytes()) {
			t.Errorf("%s differs", al[i].name)
		}
	}
	if a.Name() != b.Name() || a.WeightBytes() != b.WeightBytes() {
		t.Errorf("Name, WeightBytes = %q, %d; want %q, %d", b.Name(), b.WeightBytes(), a.Name(), a.WeightBytes())
	}
	if fa, fb := fingerprintOf(t, a), fingerprintOf(t, b); fa != fb {
		t.Errorf("vectors differ: sum %s, want %s", fb, fa)
	}
}

// TestWeightsFileMatchesHeap loads the model quantized on the heap, then
// through the weights file (the first load writes it, the second finds
// it): the weights and the vectors are the same, bit for bit.
func TestWeightsFileMatchesHeap(t *testing.T) {
	dir := testModelDir(t)
	heap := loadQ(t, dir, false)
	if heap.mapped != nil {
		t.Fatal("noFile load mapped the weights")
	}
	if _, err := os.Stat(filepath.Join(dir, WeightsFile)); !os.IsNotExist(err) {
		t.Fatalf("noFile load wrote the weights file: %v", err)
	}
	first := loadQ(t, dir, true)
	if first.mapped == nil {
		t.Fatal("first load: weights not mapped")
	}
	again := loadQ(t, dir, true)
	if again.mapped == nil {
		t.Fatal("second load: weights not mapped")
	}
	sameModel(t, heap, first)
	sameModel(t, heap, again)
	if got := leftovers(t, dir); got != nil {
		t.Errorf("temporary files left: %v", got)
	}
}

// leftovers lists the temporary weights files in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	tmp, err := filepath.Glob(filepath.Join(dir, "."+WeightsFile+"-*"))
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

// TestWeightsFileDamaged damages a good weights file in each way it may
// be damaged: LoadWith falls back to the shards, gives the same vectors,
// and writes the good file again.
func TestWeightsFileDamaged(t *testing.T) {
	dir := testModelDir(t)
	heap := loadQ(t, dir, false)
	if err := ensureWeights(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, WeightsFile)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// recrc sets the checksum of a file damaged on purpose behind it.
	recrc := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[16:], castagnoli))
		return b
	}
	for _, tc := range []struct {
		name   string
		damage func([]byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"header only", func(b []byte) []byte { return b[:weightsHeader] }},
		{"truncated", func(b []byte) []byte { return b[:len(b)/2] }},
		{"truncated and size fixed", func(b []byte) []byte {
			b = b[:len(b)-weightsAlign]
			binary.LittleEndian.PutUint64(b[16:], uint64(len(b)))
			return recrc(b)
		}},
		{"wrong magic", func(b []byte) []byte { b[0] ^= 0xff; return b }},
		{"other version", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[8:], weightsVersion+1)
			return b
		}},
		{"flipped weight", func(b []byte) []byte { b[len(b)/2] ^= 1; return b }},
		{"wrong fingerprint", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"sha256":"`)) + len(`"sha256":"`)
			b[i] ^= 1 // '0' <-> '1', 'a' <-> '`': another sum, or not hex
			return recrc(b)
		}},
		{"section out of bounds", func(b []byte) []byte {
			i := bytes.Index(b, []byte(`"len":`)) + len(`"len":`)
			b[i] = '9'
			return recrc(b)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(path, tc.damage(bytes.Clone(good)), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := loadMapped(dir); err == nil {
				t.Fatal("loadMapped accepted the damaged file")
			}
			m := loadQ(t, dir, true)
			if m.mapped == nil {
				t.Error("weights not mapped after the rewrite")
			}
			sameModel(t, heap, m)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, good) {
				t.Errorf("rewritten file differs from the good one (%d bytes, want %d)", len(got), len(good))
			}
		})
	}
}

// TestWeightsFileStaleSource changes a weight in a shard: the weights
// file, made from the old shard, is not served; the new one gives what the
// heap path gives for the changed shards.
func TestWeightsFileStaleSource(t *testing.T) {
	dir := testModelDir(t)
	if err := ensureWeights(dir); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	shard := filepath.Join(dir, "group1-shard1of7")
	f, err := os.OpenFile(shard, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A float32 of the embedding table becomes 0.5, which changes the
	// scale of its row.
	if _, err := f.WriteAt(binary.LittleEndian.AppendUint32(nil, math.Float32bits(0.5)), 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := loadMapped(dir); err == nil {
		t.Fatal("loadMapped served weights made from another shard")
	}
	m := loadQ(t, dir, true)
	if m.mapped == nil {
		t.Error("weights not mapped after the rewrite")
	}
	sameModel(t, loadQ(t, dir, false), m)
	got, err := os.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got, old) {
		t.Error("weights file not rewritten")
	}
}

// TestWeightsFileReadOnly loads from a directory where no file can be
// created: without a weights file the weights stay on the heap, and an
// existing one is mapped. The mode bits do not stop root, so creating the
// temporary file fails on purpose too.
func TestWeightsFileReadOnly(t *testing.T) {
	dir := testModelDir(t)
	heap := loadQ(t, dir, false)
	readOnly := func(t *testing.T) {
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		createTemp = func(string, string) (*os.File, error) { return nil, fs.ErrPermission }
		t.Cleanup(func() {
			createTemp = os.CreateTemp
			os.Chmod(dir, 0o755)
		})
	}
	t.Run("no file", func(t *testing.T) {
		readOnly(t)
		m := loadQ(t, dir, true)
		if m.mapped != nil {
			t.Error("weights mapped, but no file could be written")
		}
		sameModel(t, heap, m)
		if _, err := os.Stat(filepath.Join(dir, WeightsFile)); !os.IsNotExist(err) {
			t.Errorf("weights file: %v, want none", err)
		}
	})
	t.Run("file", func(t *testing.T) {
		if err := ensureWeights(dir); err != nil {
			t.Fatal(err)
		}
		readOnly(t)
		m := loadQ(t, dir, true)
		if m.mapped == nil {
			t.Error("weights not mapped")
		}
		sameModel(t, heap, m)
	})
}

// TestWeightsFileConcurrent starts from no weights file and loads the
// model from several goroutines at once: each writes a file and renames
// it into place, and every load, then and after, gets the same weights.
func TestWeightsFileConcurrent(t *testing.T) {
	dir := testModelDir(t)
	heap := loadQ(t, dir, false)
	ms := make([]*Model, 4)
	var wg sync.WaitGroup
	for i := range ms {
		wg.Go(func() {
			m, err := LoadWith(dir, LoadOptions{Quantize: true})
			if err != nil {
				t.Error(err)
			}
			ms[i] = m
		})
	}
	wg.Wait()
	for _, m := range ms {
		if m != nil {
			sameModel(t, heap, m)
		}
	}
	if _, err := loadMapped(dir); err != nil {
		t.Errorf("after concurrent loads: %v", err)
	}
	if got := leftovers(t, dir); got != nil {
		t.Errorf("temporary files left: %v", got)
	}
}

// weightsChildEnv makes the test binary a process of
// TestWeightsFileProcesses: it loads the model of the directory named and
// prints its vectors' sum.
const weightsChildEnv = "EMBED_WEIGHTS_CHILD"

func TestWeightsFileChild(t *testing.T) {
	dir := os.Getenv(weightsChildEnv)
	if dir == "" {
		t.Skip("run by TestWeightsFileProcesses")
	}
	m := loadQ(t, dir, true)
	fmt.Printf("mapped=%v sum=%s\n", m.mapped != nil, fingerprintOf(t, m))
}

// TestWeightsFileProcesses is TestWeightsFileConcurrent with processes,
// as when several editors start their conductors at once.
func TestWeightsFileProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dir := testModelDir(t)
	want := fmt.Sprintf("mapped=true sum=%s", fingerprintOf(t, loadQ(t, dir, false)))
	cmds := make([]*exec.Cmd, 3)
	outs := make([]bytes.Buffer, len(cmds))
	for i := range cmds {
		cmds[i] = exec.Command(os.Args[0], "-test.run=^TestWeightsFileChild$")
		cmds[i].Env = append(os.Environ(), weightsChildEnv+"="+dir)
		cmds[i].Stdout = &outs[i]
		cmds[i].Stderr = &outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("child %d: %v\n%s", i, err, outs[i].String())
			continue
		}
		if got := outs[i].String(); !strings.Contains(got, want) {
			t.Errorf("child %d printed %q, want %q", i, got, want)
		}
	}
	if _, err := loadMapped(dir); err != nil {
		t.Errorf("after concurrent processes: %v", err)
	}
	if got := leftovers(t, dir); got != nil {
		t.Errorf("temporary files left: %v", got)
	}
}

// TestWeightsFileWithoutModel removes a model file: the weights file
// alone does not make a model.
func TestWeightsFileWithoutModel(t *testing.T) {
	for _, name := range []string{"model.json", "vocab.json", "group1-shard7of7"} {
		t.Run(name, func(t *testing.T) {
			dir := testModelDir(t)
			if err := ensureWeights(dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadWith(dir, LoadOptions{Quantize: true}); !errors.Is(err, ErrModelMissing) {
				t.Errorf("LoadWith without %s = %v, want ErrModelMissing", name, err)
			}
		})
	}
}

// TestWeightsFileFloat32 checks that a float32 load neither reads nor
// writes the weights file.
func TestWeightsFileFloat32(t *testing.T) {
	dir := testModelDir(t)
	path := filepath.Join(dir, WeightsFile)
	if err := os.WriteFile(path, []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.mapped != nil || m.emb == nil {
		t.Error("float32 model took weights from the weights file")
	}
	if got, _ := os.ReadFile(path); string(got) != "junk" {
		t.Error("float32 load rewrote the weights file")
	}
}

// TestInstallWritesWeights runs Install on a cache that holds the model
// but no weights file: it writes one, and a start then maps it.
func TestInstallWritesWeights(t *testing.T) {
	src := testModelDir(t)
	cache := t.TempDir()
	if err := os.MkdirAll(filepath.Dir(DefaultDir(cache)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(src, DefaultDir(cache)); err != nil {
		t.Fatal(err)
	}
	dir, err := Install(context.Background(), cache, InstallOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := loadMapped(dir)
	if err != nil {
		t.Fatalf("after Install: %v", err)
	}
	sameModel(t, loadQ(t, dir, false), m)
}
