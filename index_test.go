package conductor

import (
	"encoding/binary"
	"math"
	"testing"
)

func TestSqueezeExpand(t *testing.T) {
	v := []float32{0.5, -0.25, 0.125, 0, -0.5, 0.01}
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	got := expand(squeeze(b))
	if len(got) != len(b) {
		t.Fatalf("len = %d, want %d", len(got), len(b))
	}
	for i, x := range v {
		y := math.Float32frombits(binary.LittleEndian.Uint32(got[4*i:]))
		if math.Abs(float64(x-y)) > 0.5/127 {
			t.Errorf("component %d: %v -> %v", i, x, y)
		}
	}
}
