//go:build amd64 && !purego

#include "textflag.h"

// The AVX-512 kernels compute four output columns j..j+3 (four rows of W,
// which is stored transposed) for all n rows of x:
// dst[r*out+c] = dot(x_r, w_c)*s_c + b_c. Rows of x go four at a time,
// then the last one to three together. Accumulator Z(4r+c) holds row r of
// the group, column c; Z16-Z19 hold the x rows, Z20-Z23 the w rows.
//
// Registers: SI, R12, R13, R14 point at the group's x rows, DI, R9, R10,
// R11 at the w rows; AX is the element index, CX = in; BX is the first row
// of the group, DX = n-1; R8 = in*4, the stride of x; R15 runs ahead
// through the w rows two groups of columns on, prefetching them: the
// weights of the float32 model are too big for the caches, and the
// prefetcher alone leaves the loop waiting on memory.

// ROWPTR sets reg to base + min(BX+k, DX)*stride.
#define ROWPTR(k, stride, base, reg) \
	LEAQ k(BX), reg \
	CMPQ reg, DX \
	CMOVQGT DX, reg \
	IMULQ stride, reg \
	ADDQ base, reg

// LOADX1..LOADX4 load 16 values at element AX of the first 1..4 x rows.
#define LOADX1 VMOVUPS (SI)(AX*4), Z16
#define LOADX2 LOADX1; VMOVUPS (R12)(AX*4), Z17
#define LOADX3 LOADX2; VMOVUPS (R13)(AX*4), Z18
#define LOADX4 LOADX3; VMOVUPS (R14)(AX*4), Z19

// LOADWF loads 16 float32 values at element AX of the four w rows.
#define LOADWF \
	VMOVUPS (DI)(AX*4), Z20 \
	VMOVUPS (R9)(AX*4), Z21 \
	VMOVUPS (R10)(AX*4), Z22 \
	VMOVUPS (R11)(AX*4), Z23

// LOADWQ loads 16 int8 values at element AX of the four w rows, as
// float32.
#define LOADWQ \
	VPMOVSXBD (DI)(AX*1), Z20 \
	VPMOVSXBD (R9)(AX*1), Z21 \
	VPMOVSXBD (R10)(AX*1), Z22 \
	VPMOVSXBD (R11)(AX*1), Z23 \
	VCVTDQ2PS Z20, Z20 \
	VCVTDQ2PS Z21, Z21 \
	VCVTDQ2PS Z22, Z22 \
	VCVTDQ2PS Z23, Z23

// FMA1..FMA4 add the products of the first 1..4 x rows and the w rows.
#define FMA1 \
	VFMADD231PS Z20, Z16, Z0 \
	VFMADD231PS Z21, Z16, Z1 \
	VFMADD231PS Z22, Z16, Z2 \
	VFMADD231PS Z23, Z16, Z3
#define FMA2 FMA1; \
	VFMADD231PS Z20, Z17, Z4 \
	VFMADD231PS Z21, Z17, Z5 \
	VFMADD231PS Z22, Z17, Z6 \
	VFMADD231PS Z23, Z17, Z7
#define FMA3 FMA2; \
	VFMADD231PS Z20, Z18, Z8 \
	VFMADD231PS Z21, Z18, Z9 \
	VFMADD231PS Z22, Z18, Z10 \
	VFMADD231PS Z23, Z18, Z11
#define FMA4 FMA3; \
	VFMADD231PS Z20, Z19, Z12 \
	VFMADD231PS Z21, Z19, Z13 \
	VFMADD231PS Z22, Z19, Z14 \
	VFMADD231PS Z23, Z19, Z15

// NEXT advances AX by 16 values and compares it with CX.
#define NEXT \
	ADDQ $16, AX \
	CMPQ AX, CX

// PF4 prefetches the next 256 bytes of w rows (four rows of float32 take
// 16*in bytes, 256 per step); PF1 the next 64 (int8 rows).
#define PF4 \
	PREFETCHT0 (R15) \
	PREFETCHT0 64(R15) \
	PREFETCHT0 128(R15) \
	PREFETCHT0 192(R15) \
	ADDQ $256, R15
#define PF1 \
	PREFETCHT0 (R15) \
	ADDQ $64, R15

// RED4 sums each of the accumulators z0..z3 (Y and X names alike) into
// one lane of x0: x0 = [sum z0, sum z1, sum z2, sum z3].
#define RED4(z0, z1, z2, z3, y0, y1, y2, y3, x0) \
	VEXTRACTF64X4 $1, z0, Y24 \
	VEXTRACTF64X4 $1, z1, Y25 \
	VEXTRACTF64X4 $1, z2, Y26 \
	VEXTRACTF64X4 $1, z3, Y27 \
	VADDPS Y24, y0, y0 \
	VADDPS Y25, y1, y1 \
	VADDPS Y26, y2, y2 \
	VADDPS Y27, y3, y3 \
	VHADDPS y1, y0, y0 \
	VHADDPS y3, y2, y2 \
	VHADDPS y2, y0, y0 \
	VEXTRACTF32X4 $1, y0, X24 \
	VADDPS X24, x0, x0

// ZERO clears the sixteen accumulators.
#define ZERO \
	VPXORD Z0, Z0, Z0 \
	VPXORD Z1, Z1, Z1 \
	VPXORD Z2, Z2, Z2 \
	VPXORD Z3, Z3, Z3 \
	VPXORD Z4, Z4, Z4 \
	VPXORD Z5, Z5, Z5 \
	VPXORD Z6, Z6, Z6 \
	VPXORD Z7, Z7, Z7 \
	VPXORD Z8, Z8, Z8 \
	VPXORD Z9, Z9, Z9 \
	VPXORD Z10, Z10, Z10 \
	VPXORD Z11, Z11, Z11 \
	VPXORD Z12, Z12, Z12 \
	VPXORD Z13, Z13, Z13 \
	VPXORD Z14, Z14, Z14 \
	VPXORD Z15, Z15, Z15

// REDUCE leaves the sums of rows 0..3 of the group in X0, X4, X8, X12.
#define REDUCE \
	RED4(Z0, Z1, Z2, Z3, Y0, Y1, Y2, Y3, X0) \
	RED4(Z4, Z5, Z6, Z7, Y4, Y5, Y6, Y7, X4) \
	RED4(Z8, Z9, Z10, Z11, Y8, Y9, Y10, Y11, X8) \
	RED4(Z12, Z13, Z14, Z15, Y12, Y13, Y14, Y15, X12)

// STORE writes X0, X4, X8, X12 to rows BX..BX+3 of dst. Rows past n-1
// go to row n-1 too, so they are written first and row n-1 last.
#define STORE \
	MOVQ out+40(FP), R12 \
	SHLQ $2, R12 \
	ROWPTR(3, R12, dst+32(FP), SI) \
	VMOVUPS X12, (SI) \
	ROWPTR(2, R12, dst+32(FP), SI) \
	VMOVUPS X8, (SI) \
	ROWPTR(1, R12, dst+32(FP), SI) \
	VMOVUPS X4, (SI) \
	ROWPTR(0, R12, dst+32(FP), SI) \
	VMOVUPS X0, (SI)

// XPTRS points SI, R12, R13, R14 at rows BX..BX+3 of x (up to n-1), and
// leaves in R15 the number of rows left minus one.
#define XPTRS \
	ROWPTR(0, R8, x+0(FP), SI) \
	ROWPTR(1, R8, x+0(FP), R12) \
	ROWPTR(2, R8, x+0(FP), R13) \
	ROWPTR(3, R8, x+0(FP), R14) \
	MOVQ DX, R15 \
	SUBQ BX, R15

// func kernZ(x, w *float32, in, n int, dst *float32, out int, b *float32)
// dst[r*out+c] = dot(x[r*in:(r+1)*in], w[c*in:(c+1)*in]) + b[c] for r < n,
// c < 4; in % 16 == 0, in > 0, n > 0.
TEXT ·kernZ(SB), NOSPLIT, $0-56
	MOVQ w+8(FP), DI
	MOVQ in+16(FP), CX
	MOVQ CX, R8
	SHLQ $2, R8
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	MOVQ n+24(FP), DX
	DECQ DX
	XORQ BX, BX

kernZ_group:
	XPTRS
	ZERO
	XORQ AX, AX
	CMPQ R15, $3
	JLT  kernZ_rest
	// Prefetch while in the first two groups; later groups find the
	// next columns in the cache already.
	CMPQ BX, $8
	JGE  kernZ_4
	LEAQ (R8)(R8*4), R15
	ADDQ R11, R15

kernZ_4pf:
	PF4
	LOADX4
	LOADWF
	FMA4
	NEXT
	JLT  kernZ_4pf
	JMP  kernZ_sum

kernZ_4:
	LOADX4
	LOADWF
	FMA4
	NEXT
	JLT  kernZ_4
	JMP  kernZ_sum

kernZ_rest:
	CMPQ R15, $1
	JLT  kernZ_1
	JEQ  kernZ_2

kernZ_3:
	LEAQ (R8)(R8*4), R15
	ADDQ R11, R15

kernZ_3loop:
	PF4
	LOADX3
	LOADWF
	FMA3
	NEXT
	JLT  kernZ_3loop
	JMP  kernZ_sum

kernZ_2:
	LEAQ (R8)(R8*4), R15
	ADDQ R11, R15

kernZ_2loop:
	PF4
	LOADX2
	LOADWF
	FMA2
	NEXT
	JLT  kernZ_2loop
	JMP  kernZ_sum

kernZ_1:
	LEAQ (R8)(R8*4), R15
	ADDQ R11, R15

kernZ_1loop:
	PF4
	LOADX1
	LOADWF
	FMA1
	NEXT
	JLT  kernZ_1loop

kernZ_sum:
	REDUCE
	MOVQ b+48(FP), AX
	VMOVUPS (AX), X16
	VADDPS X16, X0, X0
	VADDPS X16, X4, X4
	VADDPS X16, X8, X8
	VADDPS X16, X12, X12
	STORE
	ADDQ $4, BX
	CMPQ BX, DX
	JLE  kernZ_group
	VZEROUPPER
	RET

// func kernZq(x *float32, w *int8, in, n int, dst *float32, out int, b, s *float32)
// kernZ for int8 rows of W with scales s: dst[r*out+c] = dot(x_r, w_c)*s[c]
// + b[c], the int8 values widened to float32 in the loop.
TEXT ·kernZq(SB), NOSPLIT, $0-64
	MOVQ w+8(FP), DI
	MOVQ in+16(FP), CX
	LEAQ (DI)(CX*1), R9
	LEAQ (R9)(CX*1), R10
	LEAQ (R10)(CX*1), R11
	MOVQ CX, R8
	SHLQ $2, R8
	MOVQ n+24(FP), DX
	DECQ DX
	XORQ BX, BX

kernZq_group:
	XPTRS
	ZERO
	XORQ AX, AX
	CMPQ R15, $3
	JLT  kernZq_rest
	// Prefetch while in the first two groups; later groups find the
	// next columns in the cache already.
	CMPQ BX, $8
	JGE  kernZq_4
	LEAQ (CX)(CX*4), R15
	ADDQ R11, R15

kernZq_4pf:
	PF1
	LOADX4
	LOADWQ
	FMA4
	NEXT
	JLT  kernZq_4pf
	JMP  kernZq_sum

kernZq_4:
	LOADX4
	LOADWQ
	FMA4
	NEXT
	JLT  kernZq_4
	JMP  kernZq_sum

kernZq_rest:
	CMPQ R15, $1
	JLT  kernZq_1
	JEQ  kernZq_2

kernZq_3:
	LEAQ (CX)(CX*4), R15
	ADDQ R11, R15

kernZq_3loop:
	PF1
	LOADX3
	LOADWQ
	FMA3
	NEXT
	JLT  kernZq_3loop
	JMP  kernZq_sum

kernZq_2:
	LEAQ (CX)(CX*4), R15
	ADDQ R11, R15

kernZq_2loop:
	PF1
	LOADX2
	LOADWQ
	FMA2
	NEXT
	JLT  kernZq_2loop
	JMP  kernZq_sum

kernZq_1:
	LEAQ (CX)(CX*4), R15
	ADDQ R11, R15

kernZq_1loop:
	PF1
	LOADX1
	LOADWQ
	FMA1
	NEXT
	JLT  kernZq_1loop

kernZq_sum:
	REDUCE
	MOVQ b+48(FP), AX
	VMOVUPS (AX), X16
	MOVQ s+56(FP), AX
	VMOVUPS (AX), X17
	VFMADD213PS X16, X17, X0
	VFMADD213PS X16, X17, X4
	VFMADD213PS X16, X17, X8
	VFMADD213PS X16, X17, X12
	STORE
	ADDQ $4, BX
	CMPQ BX, DX
	JLE  kernZq_group
	VZEROUPPER
	RET

// The layer norm of a row (forward.go, layerNorm) in three passes, with
// its sums in float64 like the generic code.

// SUMPD leaves in X0 the sum of the eight float64 values of Z0.
#define SUMPD \
	VEXTRACTF64X4 $1, Z0, Y1 \
	VADDPD Y1, Y0, Y0 \
	VEXTRACTF128 $1, Y0, X1 \
	VADDPD X1, X0, X0 \
	VUNPCKHPD X0, X0, X1 \
	VADDSD X1, X0, X0

// func sumZ(x *float32, n int) float64
// The sum of x[0:n] in float64; n % 16 == 0, n > 0.
TEXT ·sumZ(SB), NOSPLIT, $0-24
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), CX
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1
	XORQ AX, AX

loopsum:
	VCVTPS2PD (SI)(AX*4), Z2
	VCVTPS2PD 32(SI)(AX*4), Z3
	VADDPD Z2, Z0, Z0
	VADDPD Z3, Z1, Z1
	ADDQ $16, AX
	CMPQ AX, CX
	JLT  loopsum

	VADDPD Z1, Z0, Z0
	SUMPD
	MOVSD X0, ret+16(FP)
	VZEROUPPER
	RET

// func centerZ(dst, x *float32, n int, mean float32) float64
// dst[i] = x[i] - mean for i < n, and returns the sum of their squares in
// float64; n % 16 == 0, n > 0.
TEXT ·centerZ(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS mean+24(FP), Z4
	VXORPD Z0, Z0, Z0
	VXORPD Z1, Z1, Z1
	XORQ AX, AX

loopcenter:
	VMOVUPS (SI)(AX*4), Z2
	VSUBPS Z4, Z2, Z2
	VMOVUPS Z2, (DI)(AX*4)
	VCVTPS2PD Y2, Z3
	VEXTRACTF64X4 $1, Z2, Y5
	VCVTPS2PD Y5, Z5
	VFMADD231PD Z3, Z3, Z0
	VFMADD231PD Z5, Z5, Z1
	ADDQ $16, AX
	CMPQ AX, CX
	JLT  loopcenter

	VADDPD Z1, Z0, Z0
	SUMPD
	MOVSD X0, ret+32(FP)
	VZEROUPPER
	RET

// func scaleShiftZ(dst, scale, bias *float32, n int, rs float32)
// dst[i] = scale[i]*rs*dst[i] + bias[i] for i < n, rounded after each
// operation as in Go; n % 16 == 0, n > 0.
TEXT ·scaleShiftZ(SB), NOSPLIT, $0-36
	MOVQ dst+0(FP), DI
	MOVQ scale+8(FP), SI
	MOVQ bias+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS rs+32(FP), Z4
	XORQ AX, AX

loopscale:
	VMULPS (SI)(AX*4), Z4, Z2
	VMULPS (DI)(AX*4), Z2, Z2
	VADDPS (DX)(AX*4), Z2, Z2
	VMOVUPS Z2, (DI)(AX*4)
	ADDQ $16, AX
	CMPQ AX, CX
	JLT  loopscale

	VZEROUPPER
	RET
