//go:build !amd64 || purego

package objective

func adamUpdate(p, g, m, v []float32, c *adamConsts) { adamGeneric(p, g, m, v, c) }

func momentumUpdate(p, g, b []float32, c *momentumConsts) { momentumGeneric(p, g, b, c) }
