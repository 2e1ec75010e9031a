package embed

import (
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// TestPassMatmul compares pass.matmul on a team (blocks of columns spread
// over helpers, with the add, relu and mean epilogues) with the caller
// alone and with the plain matmul, for float32 and int8 weights. (The blocks may
// take another kernel than the whole, as for out=130.)
func TestPassMatmul(t *testing.T) {
	defer runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))
	runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0)))
	rng := rand.New(rand.NewPCG(7, 8))
	for _, sh := range []struct{ n, in, out int }{{7, 256, 768}, {9, 64, 200}, {3, 512, 64}, {1, 32, 130}} {
		l := linear{in: sh.in, out: sh.out, wt: make([]float32, sh.in*sh.out), b: make([]float32, sh.out)}
		for i := range l.wt {
			l.wt[i] = rng.Float32()*2 - 1
		}
		for i := range l.b {
			l.b[i] = rng.Float32() - 0.5
		}
		x := make([]float32, sh.n*sh.in)
		add := make([]float32, sh.n*sh.out)
		for i := range x {
			x[i] = rng.Float32()*2 - 1
		}
		for i := range add {
			add[i] = rng.Float32()
		}
		for _, quant := range []bool{false, true} {
			if quant {
				l.quantize()
			}
			plain := make([]float32, sh.n*sh.out)
			matmul(plain, x, sh.n, &l)
			for _, helpers := range []int{0, 1} {
				p := &pass{ar: new(arena), tm: newTeam(helpers)}
				for _, mode := range []string{"plain", "add", "relu"} {
					got := make([]float32, sh.n*sh.out)
					switch mode {
					case "plain":
						p.matmul(got, x, sh.n, &l, epilogue{})
					case "add":
						copy(got, add)
						p.matmul(got, x, sh.n, &l, epilogue{add: got}) // add aliases dst
					case "relu":
						p.matmul(got, x, sh.n, &l, epilogue{relu: true})
					}
					for i, v := range plain {
						want := v
						switch mode {
						case "add":
							want = v + add[i]
						case "relu":
							want = max(v, 0)
						}
						if math.Abs(float64(got[i]-want)) > 1e-5 {
							t.Fatalf("n=%d in=%d out=%d quantized=%v helpers=%d %s: [%d] = %v, want %v", sh.n, sh.in, sh.out, quant, helpers, mode, i, got[i], want)
						}
					}
				}
				// The means of the relu'd rows of each text, with no dst; the
				// texts here are rows 0:1, 1:1 (empty) and 1:n.
				off := []int{0, 1, 1, sh.n}
				mean := make([]float32, 3*sh.out)
				p.matmul(nil, x, sh.n, &l, epilogue{relu: true, mean: mean, off: off})
				for tx := range 3 {
					for j := range sh.out {
						var want float32
						for r := off[tx]; r < off[tx+1]; r++ {
							want += max(plain[r*sh.out+j], 0)
						}
						if c := off[tx+1] - off[tx]; c > 0 {
							want /= float32(c)
						}
						if got := mean[tx*sh.out+j]; math.Abs(float64(got-want)) > 1e-5 {
							t.Fatalf("n=%d in=%d out=%d quantized=%v helpers=%d: mean of text %d [%d] = %v, want %v", sh.n, sh.in, sh.out, quant, helpers, tx, j, got, want)
						}
					}
				}
				if p.tm != nil {
					p.tm.close()
				}
			}
		}
	}
}

// TestEmbedBatches checks that texts embedded together (in batches, on a
// team, or by batch on several goroutines) get the vectors they get on
// their own, alone on one goroutine: with empty texts, a text past
// MaxTokens and enough texts for several batches.
func TestEmbedBatches(t *testing.T) {
	for _, mode := range benchModes {
		m := mode.load(t)
		texts := []string{"", "show me what is in this folder", "a", "",
			strings.Repeat("list the files of a directory ", 40),
			"export last month's invoices to a spreadsheet and email it to finance",
			"export last month's invoices to a spreadsheet", "email it to finance"}
		for i := range 12 {
			texts = append(texts, strings.Repeat("read the file and print it ", i%5+1))
		}
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
		runtime.GOMAXPROCS(1)
		want := make([][]float32, len(texts))
		for i, s := range texts {
			v, _ := m.Embed([]string{s})
			want[i] = v[0]
		}
		for _, procs := range []int{1, 2, 4} {
			runtime.GOMAXPROCS(procs)
			for _, r := range [][2]int{{0, len(texts)}, {5, 8}, {0, 4}} {
				got, _ := m.Embed(texts[r[0]:r[1]])
				for i, v := range got {
					var d float64
					for k := range v {
						d = max(d, math.Abs(float64(v[k]-want[r[0]+i][k])))
					}
					if d > 1e-6 {
						t.Errorf("%s, GOMAXPROCS=%d: Embed(texts[%d:%d])[%d] differs from the text alone by %.3g", mode.name, procs, r[0], r[1], i, d)
					}
				}
			}
		}
	}
}
