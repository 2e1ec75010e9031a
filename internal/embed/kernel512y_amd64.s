//go:build amd64 && !purego

#include "textflag.h"

// kernY and kernYq are the kernels of kernel512_amd64.s for eight output
// columns j..j+7 and three rows of x at a time (then the last one or two):
// an x row loaded from memory serves eight columns instead of four, which
// halves the traffic from L2 when x does not fit in L1 (a batch of 37 rows
// of 512 values is 74 KB). Accumulator Z(8r+c) holds row r of the group,
// column c; Z24-Z26 hold the x rows, Z28-Z31 the w rows.
//
// Registers: SI, R12, R13 point at the group's x rows; DI, R9, R10, R11,
// R14, R15, BX, DX at the w rows; AX is the element index, CX = in; R8 is
// the stride of x, or in the loop the prefetch pointer. The first row of
// the group (t) and n-1 (last) are on the stack.

// XROW sets reg to x + min(t+k, last)*R8.
#define XROW(k, reg) \
	MOVQ t-8(SP), reg \
	ADDQ $k, reg \
	CMPQ reg, last-16(SP) \
	CMOVQGT last-16(SP), reg \
	IMULQ R8, reg \
	ADDQ x+0(FP), reg

// XPTRS3 points SI, R12, R13 at rows t..t+2 of x (up to n-1).
#define XPTRS3 \
	XROW(0, SI) \
	XROW(1, R12) \
	XROW(2, R13)

// ZERO24 clears the 24 accumulators.
#define ZERO24 \
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
	VPXORD Z15, Z15, Z15 \
	VPXORD Z16, Z16, Z16 \
	VPXORD Z17, Z17, Z17 \
	VPXORD Z18, Z18, Z18 \
	VPXORD Z19, Z19, Z19 \
	VPXORD Z20, Z20, Z20 \
	VPXORD Z21, Z21, Z21 \
	VPXORD Z22, Z22, Z22 \
	VPXORD Z23, Z23, Z23

// STEP1F: the products of 16 values at element AX of 1 x row and the eight float32 w rows; advances AX and compares it with CX.
#define STEP1F \
	VMOVUPS (SI)(AX*4), Z24 \
	VMOVUPS (DI)(AX*4), Z28 \
	VFMADD231PS Z28, Z24, Z0 \
	VMOVUPS (R9)(AX*4), Z29 \
	VFMADD231PS Z29, Z24, Z1 \
	VMOVUPS (R10)(AX*4), Z30 \
	VFMADD231PS Z30, Z24, Z2 \
	VMOVUPS (R11)(AX*4), Z31 \
	VFMADD231PS Z31, Z24, Z3 \
	VMOVUPS (R14)(AX*4), Z28 \
	VFMADD231PS Z28, Z24, Z4 \
	VMOVUPS (R15)(AX*4), Z29 \
	VFMADD231PS Z29, Z24, Z5 \
	VMOVUPS (BX)(AX*4), Z30 \
	VFMADD231PS Z30, Z24, Z6 \
	VMOVUPS (DX)(AX*4), Z31 \
	VFMADD231PS Z31, Z24, Z7 \
	ADDQ $16, AX \
	CMPQ AX, CX

// STEP2F: the products of 16 values at element AX of 2 x rows and the eight float32 w rows; advances AX and compares it with CX.
#define STEP2F \
	VMOVUPS (SI)(AX*4), Z24 \
	VMOVUPS (R12)(AX*4), Z25 \
	VMOVUPS (DI)(AX*4), Z28 \
	VFMADD231PS Z28, Z24, Z0 \
	VFMADD231PS Z28, Z25, Z8 \
	VMOVUPS (R9)(AX*4), Z29 \
	VFMADD231PS Z29, Z24, Z1 \
	VFMADD231PS Z29, Z25, Z9 \
	VMOVUPS (R10)(AX*4), Z30 \
	VFMADD231PS Z30, Z24, Z2 \
	VFMADD231PS Z30, Z25, Z10 \
	VMOVUPS (R11)(AX*4), Z31 \
	VFMADD231PS Z31, Z24, Z3 \
	VFMADD231PS Z31, Z25, Z11 \
	VMOVUPS (R14)(AX*4), Z28 \
	VFMADD231PS Z28, Z24, Z4 \
	VFMADD231PS Z28, Z25, Z12 \
	VMOVUPS (R15)(AX*4), Z29 \
	VFMADD231PS Z29, Z24, Z5 \
	VFMADD231PS Z29, Z25, Z13 \
	VMOVUPS (BX)(AX*4), Z30 \
	VFMADD231PS Z30, Z24, Z6 \
	VFMADD231PS Z30, Z25, Z14 \
	VMOVUPS (DX)(AX*4), Z31 \
	VFMADD231PS Z31, Z24, Z7 \
	VFMADD231PS Z31, Z25, Z15 \
	ADDQ $16, AX \
	CMPQ AX, CX

// STEP3F: the products of 16 values at element AX of 3 x rows and the eight float32 w rows; advances AX and compares it with CX.
#define STEP3F \
	VMOVUPS (SI)(AX*4), Z24 \
	VMOVUPS (R12)(AX*4), Z25 \
	VMOVUPS (R13)(AX*4), Z26 \
	VMOVUPS (DI)(AX*4), Z28 \
	VFMADD231PS Z28, Z24, Z0 \
	VFMADD231PS Z28, Z25, Z8 \
	VFMADD231PS Z28, Z26, Z16 \
	VMOVUPS (R9)(AX*4), Z29 \
	VFMADD231PS Z29, Z24, Z1 \
	VFMADD231PS Z29, Z25, Z9 \
	VFMADD231PS Z29, Z26, Z17 \
	VMOVUPS (R10)(AX*4), Z30 \
	VFMADD231PS Z30, Z24, Z2 \
	VFMADD231PS Z30, Z25, Z10 \
	VFMADD231PS Z30, Z26, Z18 \
	VMOVUPS (R11)(AX*4), Z31 \
	VFMADD231PS Z31, Z24, Z3 \
	VFMADD231PS Z31, Z25, Z11 \
	VFMADD231PS Z31, Z26, Z19 \
	VMOVUPS (R14)(AX*4), Z28 \
	VFMADD231PS Z28, Z24, Z4 \
	VFMADD231PS Z28, Z25, Z12 \
	VFMADD231PS Z28, Z26, Z20 \
	VMOVUPS (R15)(AX*4), Z29 \
	VFMADD231PS Z29, Z24, Z5 \
	VFMADD231PS Z29, Z25, Z13 \
	VFMADD231PS Z29, Z26, Z21 \
	VMOVUPS (BX)(AX*4), Z30 \
	VFMADD231PS Z30, Z24, Z6 \
	VFMADD231PS Z30, Z25, Z14 \
	VFMADD231PS Z30, Z26, Z22 \
	VMOVUPS (DX)(AX*4), Z31 \
	VFMADD231PS Z31, Z24, Z7 \
	VFMADD231PS Z31, Z25, Z15 \
	VFMADD231PS Z31, Z26, Z23 \
	ADDQ $16, AX \
	CMPQ AX, CX

// STEP1Q: the products of 16 values at element AX of 1 x row and the eight int8 w rows; advances AX and compares it with CX.
#define STEP1Q \
	VMOVUPS (SI)(AX*4), Z24 \
	VPMOVSXBD (DI)(AX*1), Z28 \
	VCVTDQ2PS Z28, Z28 \
	VFMADD231PS Z28, Z24, Z0 \
	VPMOVSXBD (R9)(AX*1), Z29 \
	VCVTDQ2PS Z29, Z29 \
	VFMADD231PS Z29, Z24, Z1 \
	VPMOVSXBD (R10)(AX*1), Z30 \
	VCVTDQ2PS Z30, Z30 \
	VFMADD231PS Z30, Z24, Z2 \
	VPMOVSXBD (R11)(AX*1), Z31 \
	VCVTDQ2PS Z31, Z31 \
	VFMADD231PS Z31, Z24, Z3 \
	VPMOVSXBD (R14)(AX*1), Z28 \
	VCVTDQ2PS Z28, Z28 \
	VFMADD231PS Z28, Z24, Z4 \
	VPMOVSXBD (R15)(AX*1), Z29 \
	VCVTDQ2PS Z29, Z29 \
	VFMADD231PS Z29, Z24, Z5 \
	VPMOVSXBD (BX)(AX*1), Z30 \
	VCVTDQ2PS Z30, Z30 \
	VFMADD231PS Z30, Z24, Z6 \
	VPMOVSXBD (DX)(AX*1), Z31 \
	VCVTDQ2PS Z31, Z31 \
	VFMADD231PS Z31, Z24, Z7 \
	ADDQ $16, AX \
	CMPQ AX, CX

// STEP2Q: the products of 16 values at element AX of 2 x rows and the eight int8 w rows; advances AX and compares it with CX.
#define STEP2Q \
	VMOVUPS (SI)(AX*4), Z24 \
	VMOVUPS (R12)(AX*4), Z25 \
	VPMOVSXBD (DI)(AX*1), Z28 \
	VCVTDQ2PS Z28, Z28 \
	VFMADD231PS Z28, Z24, Z0 \
	VFMADD231PS Z28, Z25, Z8 \
	VPMOVSXBD (R9)(AX*1), Z29 \
	VCVTDQ2PS Z29, Z29 \
	VFMADD231PS Z29, Z24, Z1 \
	VFMADD231PS Z29, Z25, Z9 \
	VPMOVSXBD (R10)(AX*1), Z30 \
	VCVTDQ2PS Z30, Z30 \
	VFMADD231PS Z30, Z24, Z2 \
	VFMADD231PS Z30, Z25, Z10 \
	VPMOVSXBD (R11)(AX*1), Z31 \
	VCVTDQ2PS Z31, Z31 \
	VFMADD231PS Z31, Z24, Z3 \
	VFMADD231PS Z31, Z25, Z11 \
	VPMOVSXBD (R14)(AX*1), Z28 \
	VCVTDQ2PS Z28, Z28 \
	VFMADD231PS Z28, Z24, Z4 \
	VFMADD231PS Z28, Z25, Z12 \
	VPMOVSXBD (R15)(AX*1), Z29 \
	VCVTDQ2PS Z29, Z29 \
	VFMADD231PS Z29, Z24, Z5 \
	VFMADD231PS Z29, Z25, Z13 \
	VPMOVSXBD (BX)(AX*1), Z30 \
	VCVTDQ2PS Z30, Z30 \
	VFMADD231PS Z30, Z24, Z6 \
	VFMADD231PS Z30, Z25, Z14 \
	VPMOVSXBD (DX)(AX*1), Z31 \
	VCVTDQ2PS Z31, Z31 \
	VFMADD231PS Z31, Z24, Z7 \
	VFMADD231PS Z31, Z25, Z15 \
	ADDQ $16, AX \
	CMPQ AX, CX

// STEP3Q: the products of 16 values at element AX of 3 x rows and the eight int8 w rows; advances AX and compares it with CX.
#define STEP3Q \
	VMOVUPS (SI)(AX*4), Z24 \
	VMOVUPS (R12)(AX*4), Z25 \
	VMOVUPS (R13)(AX*4), Z26 \
	VPMOVSXBD (DI)(AX*1), Z28 \
	VCVTDQ2PS Z28, Z28 \
	VFMADD231PS Z28, Z24, Z0 \
	VFMADD231PS Z28, Z25, Z8 \
	VFMADD231PS Z28, Z26, Z16 \
	VPMOVSXBD (R9)(AX*1), Z29 \
	VCVTDQ2PS Z29, Z29 \
	VFMADD231PS Z29, Z24, Z1 \
	VFMADD231PS Z29, Z25, Z9 \
	VFMADD231PS Z29, Z26, Z17 \
	VPMOVSXBD (R10)(AX*1), Z30 \
	VCVTDQ2PS Z30, Z30 \
	VFMADD231PS Z30, Z24, Z2 \
	VFMADD231PS Z30, Z25, Z10 \
	VFMADD231PS Z30, Z26, Z18 \
	VPMOVSXBD (R11)(AX*1), Z31 \
	VCVTDQ2PS Z31, Z31 \
	VFMADD231PS Z31, Z24, Z3 \
	VFMADD231PS Z31, Z25, Z11 \
	VFMADD231PS Z31, Z26, Z19 \
	VPMOVSXBD (R14)(AX*1), Z28 \
	VCVTDQ2PS Z28, Z28 \
	VFMADD231PS Z28, Z24, Z4 \
	VFMADD231PS Z28, Z25, Z12 \
	VFMADD231PS Z28, Z26, Z20 \
	VPMOVSXBD (R15)(AX*1), Z29 \
	VCVTDQ2PS Z29, Z29 \
	VFMADD231PS Z29, Z24, Z5 \
	VFMADD231PS Z29, Z25, Z13 \
	VFMADD231PS Z29, Z26, Z21 \
	VPMOVSXBD (BX)(AX*1), Z30 \
	VCVTDQ2PS Z30, Z30 \
	VFMADD231PS Z30, Z24, Z6 \
	VFMADD231PS Z30, Z25, Z14 \
	VFMADD231PS Z30, Z26, Z22 \
	VPMOVSXBD (DX)(AX*1), Z31 \
	VCVTDQ2PS Z31, Z31 \
	VFMADD231PS Z31, Z24, Z7 \
	VFMADD231PS Z31, Z25, Z15 \
	VFMADD231PS Z31, Z26, Z23 \
	ADDQ $16, AX \
	CMPQ AX, CX

// SETPFF and SETPFQ point R8 at the w rows two groups of columns on
// (16 rows of float32 or int8); PFF and PFQ prefetch the next 512 or 128
// bytes there, a group's share of one step.
#define SETPFF \
	MOVQ CX, R8 \
	SHLQ $6, R8 \
	ADDQ DI, R8
#define SETPFQ \
	MOVQ CX, R8 \
	SHLQ $4, R8 \
	ADDQ DI, R8
#define PFF \
	PREFETCHT0 (R8) \
	PREFETCHT0 64(R8) \
	PREFETCHT0 128(R8) \
	PREFETCHT0 192(R8) \
	PREFETCHT0 256(R8) \
	PREFETCHT0 320(R8) \
	PREFETCHT0 384(R8) \
	PREFETCHT0 448(R8) \
	ADDQ $512, R8
#define PFQ \
	PREFETCHT0 (R8) \
	PREFETCHT0 64(R8) \
	ADDQ $128, R8

// RED8 sums each of the eight accumulators z0..z7 (Y names alike) into
// one lane of y0: y0 = [sum z0, ..., sum z7]. It uses Y27 and y1..y7.
#define RED8(z0, z1, z2, z3, z4, z5, z6, z7, y0, y1, y2, y3, y4, y5, y6, y7) \
	VEXTRACTF64X4 $1, z0, Y27 \
	VADDPS Y27, y0, y0 \
	VEXTRACTF64X4 $1, z1, Y27 \
	VADDPS Y27, y1, y1 \
	VEXTRACTF64X4 $1, z2, Y27 \
	VADDPS Y27, y2, y2 \
	VEXTRACTF64X4 $1, z3, Y27 \
	VADDPS Y27, y3, y3 \
	VEXTRACTF64X4 $1, z4, Y27 \
	VADDPS Y27, y4, y4 \
	VEXTRACTF64X4 $1, z5, Y27 \
	VADDPS Y27, y5, y5 \
	VEXTRACTF64X4 $1, z6, Y27 \
	VADDPS Y27, y6, y6 \
	VEXTRACTF64X4 $1, z7, Y27 \
	VADDPS Y27, y7, y7 \
	VHADDPS y1, y0, y0 \
	VHADDPS y3, y2, y2 \
	VHADDPS y5, y4, y4 \
	VHADDPS y7, y6, y6 \
	VHADDPS y2, y0, y0 \
	VHADDPS y6, y4, y4 \
	VPERM2F128 $0x20, y4, y0, y1 \
	VPERM2F128 $0x31, y4, y0, y2 \
	VADDPS y2, y1, y0

// REDUCE3 leaves the sums of rows 0..2 of the group in Y24, Y25, Y26.
// (VHADDPS reaches only Y0-Y15: row 2 moves down first.)
#define REDUCE3 \
	RED8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7) \
	VMOVAPS Y0, Y24 \
	RED8(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15) \
	VMOVAPS Y8, Y25 \
	VMOVAPS Z16, Z0 \
	VMOVAPS Z17, Z1 \
	VMOVAPS Z18, Z2 \
	VMOVAPS Z19, Z3 \
	VMOVAPS Z20, Z4 \
	VMOVAPS Z21, Z5 \
	VMOVAPS Z22, Z6 \
	VMOVAPS Z23, Z7 \
	RED8(Z0, Z1, Z2, Z3, Z4, Z5, Z6, Z7, Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7) \
	VMOVAPS Y0, Y26

// DROW sets SI to dst + min(t+k, last)*R8, R8 = out*4.
#define DROW(k) \
	MOVQ t-8(SP), SI \
	ADDQ $k, SI \
	CMPQ SI, last-16(SP) \
	CMOVQGT last-16(SP), SI \
	IMULQ R8, SI \
	ADDQ dst+32(FP), SI

// STORE3 writes Y24, Y25, Y26 to rows t..t+2 of dst. Rows past n-1 go to
// row n-1 too, so they are written first and row n-1 last.
#define STORE3 \
	MOVQ out+40(FP), R8 \
	SHLQ $2, R8 \
	DROW(2) \
	VMOVUPS Y26, (SI) \
	DROW(1) \
	VMOVUPS Y25, (SI) \
	DROW(0) \
	VMOVUPS Y24, (SI)

// func kernY(x, w *float32, in, n int, dst *float32, out int, b *float32)
// dst[r*out+c] = dot(x[r*in:(r+1)*in], w[c*in:(c+1)*in]) + b[c] for r < n,
// c < 8; in % 16 == 0, in > 0, n > 0.
TEXT ·kernY(SB), NOSPLIT, $16-56
	MOVQ in+16(FP), CX
	MOVQ n+24(FP), AX
	DECQ AX
	MOVQ AX, last-16(SP)
	MOVQ $0, t-8(SP)
	MOVQ w+8(FP), DI
	MOVQ CX, AX
	SHLQ $2, AX
	LEAQ (DI)(AX*1), R9
	LEAQ (R9)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R14
	LEAQ (R14)(AX*1), R15
	LEAQ (R15)(AX*1), BX
	LEAQ (BX)(AX*1), DX

kernY_group:
	MOVQ CX, R8
	SHLQ $2, R8
	XPTRS3
	ZERO24
	MOVQ last-16(SP), AX
	SUBQ t-8(SP), AX
	CMPQ AX, $2
	JLT  kernY_rest
	XORQ AX, AX
	// Prefetch while in the first two groups; later groups find the
	// next columns in the cache already.
	CMPQ t-8(SP), $6
	JGE  kernY_3
	SETPFF

kernY_3pf:
	PFF
	STEP3F
	JLT  kernY_3pf
	JMP  kernY_sum

kernY_3:
	STEP3F
	JLT  kernY_3
	JMP  kernY_sum

kernY_rest:
	CMPQ AX, $1
	JLT  kernY_1pre
	XORQ AX, AX
	SETPFF

kernY_2:
	PFF
	STEP2F
	JLT  kernY_2
	JMP  kernY_sum

kernY_1pre:
	XORQ AX, AX
	SETPFF

kernY_1:
	PFF
	STEP1F
	JLT  kernY_1

kernY_sum:
	REDUCE3
	MOVQ b+48(FP), AX
	VMOVUPS (AX), Y27
	VADDPS Y27, Y24, Y24
	VADDPS Y27, Y25, Y25
	VADDPS Y27, Y26, Y26
	STORE3
	MOVQ t-8(SP), AX
	ADDQ $3, AX
	MOVQ AX, t-8(SP)
	CMPQ AX, last-16(SP)
	JLE  kernY_group
	VZEROUPPER
	RET

// func kernYq(x *float32, w *int8, in, n int, dst *float32, out int, b, s *float32)
// kernY for int8 rows of W with scales s: dst[r*out+c] = dot(x_r, w_c)*s[c]
// + b[c], the int8 values widened to float32 in the loop.
TEXT ·kernYq(SB), NOSPLIT, $16-64
	MOVQ in+16(FP), CX
	MOVQ n+24(FP), AX
	DECQ AX
	MOVQ AX, last-16(SP)
	MOVQ $0, t-8(SP)
	MOVQ w+8(FP), DI
	MOVQ CX, AX
	LEAQ (DI)(AX*1), R9
	LEAQ (R9)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R14
	LEAQ (R14)(AX*1), R15
	LEAQ (R15)(AX*1), BX
	LEAQ (BX)(AX*1), DX

kernYq_group:
	MOVQ CX, R8
	SHLQ $2, R8
	XPTRS3
	ZERO24
	MOVQ last-16(SP), AX
	SUBQ t-8(SP), AX
	CMPQ AX, $2
	JLT  kernYq_rest
	XORQ AX, AX
	// Prefetch while in the first two groups; later groups find the
	// next columns in the cache already.
	CMPQ t-8(SP), $6
	JGE  kernYq_3
	SETPFQ

kernYq_3pf:
	PFQ
	STEP3Q
	JLT  kernYq_3pf
	JMP  kernYq_sum

kernYq_3:
	STEP3Q
	JLT  kernYq_3
	JMP  kernYq_sum

kernYq_rest:
	CMPQ AX, $1
	JLT  kernYq_1pre
	XORQ AX, AX
	SETPFQ

kernYq_2:
	PFQ
	STEP2Q
	JLT  kernYq_2
	JMP  kernYq_sum

kernYq_1pre:
	XORQ AX, AX
	SETPFQ

kernYq_1:
	PFQ
	STEP1Q
	JLT  kernYq_1

kernYq_sum:
	REDUCE3
	MOVQ b+48(FP), AX
	VMOVUPS (AX), Y27
	MOVQ s+56(FP), AX
	VMOVUPS (AX), Y28
	VFMADD213PS Y27, Y28, Y24
	VFMADD213PS Y27, Y28, Y25
	VFMADD213PS Y27, Y28, Y26
	STORE3
	MOVQ t-8(SP), AX
	ADDQ $3, AX
	MOVQ AX, t-8(SP)
	CMPQ AX, last-16(SP)
	JLE  kernYq_group
	VZEROUPPER
	RET
