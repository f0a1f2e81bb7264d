// The optimizers' element-wise updates. Each has a plain Go version and, on
// amd64 with AVX, a vector kernel that performs the same float32 operations in
// the same order, so both give the same result bit for bit.

package objective

import "math"

// adamConsts are the per-step constants of an Adam update, laid out for the
// assembly kernel.
type adamConsts struct {
	wd, b1, nb1, b2, nb2, rbc2, eps, step float32
}

// adamGeneric applies one Adam update to p from g, updating the moments m
// and v. Every product is rounded to float32 before it is added (no fused
// multiply-add), so that it matches the vector kernel bit for bit:
//
//	d = g + wd·p
//	m = b1·m + (1−b1)·d
//	v = b2·v + (1−b2)·d²
//	p = p − (step·m) / (√v·rbc2 + eps)
func adamGeneric(p, g, m, v []float32, c *adamConsts) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for i := range p {
		d := g[i] + float32(c.wd*p[i])
		mi := float32(c.b1*m[i]) + float32(c.nb1*d)
		vi := float32(c.b2*v[i]) + float32(c.nb2*float32(d*d))
		m[i], v[i] = mi, vi
		denom := float32(float32(math.Sqrt(float64(vi)))*c.rbc2) + c.eps
		p[i] -= float32(c.step*mi) / denom
	}
}

// momentumConsts are the constants of an SGD-with-momentum update.
type momentumConsts struct {
	wd, mu, lr float32
}

// momentumGeneric applies one update of SGD with momentum (torch.optim.SGD,
// dampening 0) to p from g with the buffer b, products rounded before sums
// as in the vector kernel:
//
//	d = g + wd·p
//	b = mu·b + d
//	p = p − lr·b
func momentumGeneric(p, g, b []float32, c *momentumConsts) {
	g, b = g[:len(p)], b[:len(p)]
	for i := range p {
		d := g[i] + float32(c.wd*p[i])
		bi := float32(c.mu*b[i]) + d
		b[i] = bi
		p[i] -= float32(c.lr * bi)
	}
}
