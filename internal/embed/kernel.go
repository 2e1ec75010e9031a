package embed

// matmul sets dst (n × l.out) to x (n × l.in) · W + b. It is
// matmulGeneric unless the CPU has faster kernels (kernel_amd64.go).
var matmul = matmulGeneric

// matmulGeneric is matmul in plain Go. Columns go in blocks of four so
// that four rows of W (transposed) are read once per input row and stay in
// cache across rows.
func matmulGeneric(dst, x []float32, n int, l *linear) {
	if l.q != nil {
		matmulQGeneric(dst, x, n, l)
		return
	}
	in, out := l.in, l.out
	j := 0
	for ; j+4 <= out; j += 4 {
		w0 := l.wt[j*in : (j+1)*in]
		w1 := l.wt[(j+1)*in : (j+2)*in]
		w2 := l.wt[(j+2)*in : (j+3)*in]
		w3 := l.wt[(j+3)*in : (j+4)*in]
		for r := range n {
			s0, s1, s2, s3 := dot4(x[r*in:(r+1)*in], w0, w1, w2, w3)
			d := dst[r*out+j : r*out+j+4]
			d[0] = s0 + l.b[j]
			d[1] = s1 + l.b[j+1]
			d[2] = s2 + l.b[j+2]
			d[3] = s3 + l.b[j+3]
		}
	}
	for ; j < out; j++ {
		w := l.wt[j*in : (j+1)*in]
		for r := range n {
			dst[r*out+j] = dot(x[r*in:(r+1)*in], w) + l.b[j]
		}
	}
}

// matmulQGeneric is matmulGeneric for int8 weights: each sum is taken
// over the int8 values, then scaled.
func matmulQGeneric(dst, x []float32, n int, l *linear) {
	in, out := l.in, l.out
	j := 0
	for ; j+4 <= out; j += 4 {
		w0 := l.q[j*in : (j+1)*in]
		w1 := l.q[(j+1)*in : (j+2)*in]
		w2 := l.q[(j+2)*in : (j+3)*in]
		w3 := l.q[(j+3)*in : (j+4)*in]
		for r := range n {
			s0, s1, s2, s3 := dot4q(x[r*in:(r+1)*in], w0, w1, w2, w3)
			d := dst[r*out+j : r*out+j+4]
			d[0] = s0*l.scale[j] + l.b[j]
			d[1] = s1*l.scale[j+1] + l.b[j+1]
			d[2] = s2*l.scale[j+2] + l.b[j+2]
			d[3] = s3*l.scale[j+3] + l.b[j+3]
		}
	}
	for ; j < out; j++ {
		w := l.q[j*in : (j+1)*in]
		for r := range n {
			var s float32
			for i, v := range x[r*in : (r+1)*in] {
				s += v * float32(w[i])
			}
			dst[r*out+j] = s*l.scale[j] + l.b[j]
		}
	}
}

func dot4q(x []float32, w0, w1, w2, w3 []int8) (s0, s1, s2, s3 float32) {
	w0 = w0[:len(x)]
	w1 = w1[:len(x)]
	w2 = w2[:len(x)]
	w3 = w3[:len(x)]
	for i, v := range x {
		s0 += v * float32(w0[i])
		s1 += v * float32(w1[i])
		s2 += v * float32(w2[i])
		s3 += v * float32(w3[i])
	}
	return
}

// dot4 returns the dot products of x with four rows of the same
// length.
func dot4(x, w0, w1, w2, w3 []float32) (s0, s1, s2, s3 float32) {
	w0 = w0[:len(x)]
	w1 = w1[:len(x)]
	w2 = w2[:len(x)]
	w3 = w3[:len(x)]
	for i, v := range x {
		s0 += v * w0[i]
		s1 += v * w1[i]
		s2 += v * w2[i]
		s3 += v * w3[i]
	}
	return
}

// layerNorm normalises n rows of c values as the graph's layer_norm ops
// do: scale*rsqrt(var+eps)*(x-mean) + bias.
var layerNorm = layerNormGeneric

// dot returns the dot product of x and y[:len(x)].
var dot = dotGeneric

// axpy adds a*x to y[:len(x)].
var axpy = axpyGeneric

func axpyGeneric(a float32, x, y []float32) {
	y = y[:len(x)]
	for i, v := range x {
		y[i] += a * v
	}
}

func dotGeneric(x, y []float32) float32 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += x[i] * y[i]
		s1 += x[i+1] * y[i+1]
		s2 += x[i+2] * y[i+2]
		s3 += x[i+3] * y[i+3]
	}
	for ; i < len(x); i++ {
		s0 += x[i] * y[i]
	}
	return (s0 + s1) + (s2 + s3)
}
