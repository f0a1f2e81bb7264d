//go:build amd64 && !purego

package objective

import "golang.org/x/sys/cpu"

// adamAVX updates n elements (a multiple of 8) with 256-bit AVX vectors.
//
//go:noescape
func adamAVX(p, grad, m, v *float32, n int, c *adamConsts)

// momentumAVX updates n elements (a multiple of 8) with 256-bit AVX vectors.
//
//go:noescape
func momentumAVX(p, grad, b *float32, n int, c *momentumConsts)

var haveAVX = cpu.X86.HasAVX

// adamUpdate is adamGeneric on AVX vectors where the CPU has them: square
// roots and divisions dominate Adam's step, and they take as long for eight
// float32s as for one.
func adamUpdate(p, g, m, v []float32, c *adamConsts) {
	n := len(p) &^ 7
	if !haveAVX || n == 0 {
		adamGeneric(p, g, m, v, c)
		return
	}
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	adamAVX(&p[0], &g[0], &m[0], &v[0], n, c)
	adamGeneric(p[n:], g[n:], m[n:], v[n:], c)
}

// momentumUpdate is momentumGeneric on AVX vectors where the CPU has them:
// one pass over the parameters instead of three BLAS calls.
func momentumUpdate(p, g, b []float32, c *momentumConsts) {
	n := len(p) &^ 7
	if !haveAVX || n == 0 {
		momentumGeneric(p, g, b, c)
		return
	}
	g, b = g[:len(p)], b[:len(p)]
	momentumAVX(&p[0], &g[0], &b[0], n, c)
	momentumGeneric(p[n:], g[n:], b[n:], c)
}
