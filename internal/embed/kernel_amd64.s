//go:build amd64 && !purego

#include "textflag.h"

// HSUM reduces the eight floats of Y register y to one, stored at dst,
// using x (the X half of y) and tmp as scratch.
#define HSUM(y, x, tmpy, tmpx, dst) \
	VEXTRACTF128 $1, y, tmpx \
	VADDPS tmpx, x, x \
	VHADDPS x, x, x \
	VHADDPS x, x, x \
	MOVSS x, dst

// func kern1x4(x, w *float32, in int, out *[4]float32)
// out[c] = dot(x[0:in], w[c*in:(c+1)*in]) for c < 4; in % 16 == 0, in > 0.
TEXT ·kern1x4(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ in+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ CX, R8
	SHLQ $2, R8
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ AX, AX
	SHRQ $4, CX

loop1x4:
	VMOVUPS (SI)(AX*1), Y8
	VMOVUPS 32(SI)(AX*1), Y9
	VFMADD231PS (DI)(AX*1), Y8, Y0
	VFMADD231PS (R9)(AX*1), Y8, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y3
	VFMADD231PS 32(DI)(AX*1), Y9, Y4
	VFMADD231PS 32(R9)(AX*1), Y9, Y5
	VFMADD231PS 32(R10)(AX*1), Y9, Y6
	VFMADD231PS 32(R11)(AX*1), Y9, Y7
	ADDQ $64, AX
	DECQ CX
	JNZ  loop1x4

	VADDPS Y4, Y0, Y0
	VADDPS Y5, Y1, Y1
	VADDPS Y6, Y2, Y2
	VADDPS Y7, Y3, Y3
	HSUM(Y0, X0, Y8, X8, 0(DX))
	HSUM(Y1, X1, Y8, X8, 4(DX))
	HSUM(Y2, X2, Y8, X8, 8(DX))
	HSUM(Y3, X3, Y8, X8, 12(DX))
	VZEROUPPER
	RET

// func kern3x4(x, w *float32, in int, out *[12]float32)
// out[r*4+c] = dot(x[r*in:(r+1)*in], w[c*in:(c+1)*in]) for r < 3, c < 4;
// in % 8 == 0, in > 0.
TEXT ·kern3x4(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ w+8(FP), DI
	MOVQ in+16(FP), CX
	MOVQ out+24(FP), DX
	MOVQ CX, R8
	SHLQ $2, R8
	LEAQ (SI)(R8*1), R12
	LEAQ (R12)(R8*1), R13
	LEAQ (DI)(R8*1), R9
	LEAQ (R9)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	XORQ AX, AX
	SHRQ $3, CX

loop3x4:
	VMOVUPS (SI)(AX*1), Y12
	VMOVUPS (R12)(AX*1), Y13
	VMOVUPS (R13)(AX*1), Y14
	VMOVUPS (DI)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMOVUPS (R9)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMOVUPS (R10)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMOVUPS (R11)(AX*1), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ $32, AX
	DECQ CX
	JNZ  loop3x4

	HSUM(Y0, X0, Y12, X12, 0(DX))
	HSUM(Y1, X1, Y12, X12, 4(DX))
	HSUM(Y2, X2, Y12, X12, 8(DX))
	HSUM(Y3, X3, Y12, X12, 12(DX))
	HSUM(Y4, X4, Y12, X12, 16(DX))
	HSUM(Y5, X5, Y12, X12, 20(DX))
	HSUM(Y6, X6, Y12, X12, 24(DX))
	HSUM(Y7, X7, Y12, X12, 28(DX))
	HSUM(Y8, X8, Y12, X12, 32(DX))
	HSUM(Y9, X9, Y12, X12, 36(DX))
	HSUM(Y10, X10, Y12, X12, 40(DX))
	HSUM(Y11, X11, Y12, X12, 44(DX))
	VZEROUPPER
	RET

// func dotAVX(x, y *float32, n int) float32
// n % 16 == 0, n > 0.
TEXT ·dotAVX(SB), NOSPLIT, $0-28
	MOVQ x+0(FP), SI
	MOVQ y+8(FP), DI
	MOVQ n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ AX, AX
	SHRQ $4, CX

loopdot:
	VMOVUPS (SI)(AX*1), Y2
	VMOVUPS 32(SI)(AX*1), Y3
	VFMADD231PS (DI)(AX*1), Y2, Y0
	VFMADD231PS 32(DI)(AX*1), Y3, Y1
	ADDQ $64, AX
	DECQ CX
	JNZ  loopdot

	VADDPS Y1, Y0, Y0
	HSUM(Y0, X0, Y2, X2, ret+24(FP))
	VZEROUPPER
	RET

// func axpyAVX(a float32, x, y *float32, n int)
// y[i] += a*x[i] for i < n; n % 8 == 0, n > 0.
TEXT ·axpyAVX(SB), NOSPLIT, $0-32
	VBROADCASTSS a+0(FP), Y0
	MOVQ x+8(FP), SI
	MOVQ y+16(FP), DI
	MOVQ n+24(FP), CX
	XORQ AX, AX
	SHRQ $3, CX

loopaxpy:
	VMOVUPS (DI)(AX*1), Y1
	VFMADD231PS (SI)(AX*1), Y0, Y1
	VMOVUPS Y1, (DI)(AX*1)
	ADDQ $32, AX
	DECQ CX
	JNZ  loopaxpy

	VZEROUPPER
	RET

// func dequantAVX(dst *float32, src *int8, n int, s float32)
// dst[i] = float32(src[i]) * s for i < n; n % 16 == 0, n > 0.
TEXT ·dequantAVX(SB), NOSPLIT, $0-28
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS s+24(FP), Y0
	XORQ AX, AX
	SHRQ $4, CX

loopdq:
	VPMOVSXBD (SI)(AX*1), Y1
	VPMOVSXBD 8(SI)(AX*1), Y2
	VCVTDQ2PS Y1, Y1
	VCVTDQ2PS Y2, Y2
	VMULPS Y0, Y1, Y1
	VMULPS Y0, Y2, Y2
	VMOVUPS Y1, (DI)(AX*4)
	VMOVUPS Y2, 32(DI)(AX*4)
	ADDQ $16, AX
	DECQ CX
	JNZ  loopdq

	VZEROUPPER
	RET
