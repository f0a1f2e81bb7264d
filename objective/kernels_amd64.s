//go:build amd64 && !purego

#include "textflag.h"

// func adamAVX(p, grad, m, v *float32, n int, c *adamConsts)
// The same operations, in the same order and rounding, as adamGeneric.
TEXT ·adamAVX(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+40(FP), AX
	VBROADCASTSS 0(AX), Y8   // wd
	VBROADCASTSS 4(AX), Y9   // b1
	VBROADCASTSS 8(AX), Y10  // 1-b1
	VBROADCASTSS 12(AX), Y11 // b2
	VBROADCASTSS 16(AX), Y12 // 1-b2
	VBROADCASTSS 20(AX), Y13 // rbc2
	VBROADCASTSS 24(AX), Y14 // eps
	VBROADCASTSS 28(AX), Y15 // step
	XORQ BX, BX

loop:
	CMPQ BX, CX
	JGE  done
	VMOVUPS (DI)(BX*4), Y0   // p
	VMOVUPS (SI)(BX*4), Y1   // g
	VMULPS  Y8, Y0, Y4       // wd·p
	VADDPS  Y4, Y1, Y1       // d = g + wd·p
	VMOVUPS (R8)(BX*4), Y2   // m
	VMULPS  Y9, Y2, Y2       // b1·m
	VMULPS  Y10, Y1, Y4      // (1-b1)·d
	VADDPS  Y4, Y2, Y2       // m
	VMOVUPS Y2, (R8)(BX*4)
	VMOVUPS (R9)(BX*4), Y3   // v
	VMULPS  Y11, Y3, Y3      // b2·v
	VMULPS  Y1, Y1, Y4       // d·d
	VMULPS  Y12, Y4, Y4      // (1-b2)·d²
	VADDPS  Y4, Y3, Y3       // v
	VMOVUPS Y3, (R9)(BX*4)
	VSQRTPS Y3, Y5           // √v
	VMULPS  Y13, Y5, Y5      // √v·rbc2
	VADDPS  Y14, Y5, Y5      // + eps
	VMULPS  Y15, Y2, Y6      // step·m
	VDIVPS  Y5, Y6, Y6       // (step·m) / denominator
	VSUBPS  Y6, Y0, Y0       // p - ...
	VMOVUPS Y0, (DI)(BX*4)
	ADDQ    $8, BX
	JMP     loop

done:
	VZEROUPPER
	RET

// func momentumAVX(p, grad, b *float32, n int, c *momentumConsts)
// The same operations, in the same order and rounding, as momentumGeneric.
TEXT ·momentumAVX(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ b+16(FP), R8
	MOVQ n+24(FP), CX
	MOVQ c+32(FP), AX
	VBROADCASTSS 0(AX), Y8   // wd
	VBROADCASTSS 4(AX), Y9   // mu
	VBROADCASTSS 8(AX), Y10  // lr
	XORQ BX, BX

mloop:
	CMPQ BX, CX
	JGE  mdone
	VMOVUPS (DI)(BX*4), Y0   // p
	VMOVUPS (SI)(BX*4), Y1   // g
	VMULPS  Y8, Y0, Y4       // wd·p
	VADDPS  Y4, Y1, Y1       // d = g + wd·p
	VMOVUPS (R8)(BX*4), Y2   // b
	VMULPS  Y9, Y2, Y2       // mu·b
	VADDPS  Y1, Y2, Y2       // b = mu·b + d
	VMOVUPS Y2, (R8)(BX*4)
	VMULPS  Y10, Y2, Y6      // lr·b
	VSUBPS  Y6, Y0, Y0       // p - lr·b
	VMOVUPS Y0, (DI)(BX*4)
	ADDQ    $8, BX
	JMP     mloop

mdone:
	VZEROUPPER
	RET
