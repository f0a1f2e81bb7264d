// Package flood implements the flooding regularizer of Ishida et al. (ICML 2020),
// "Do We Need Zero Training Loss After Achieving Zero Training Error?", and its
// individual variant iFlood (Xie et al., ICLR 2022), as Gorgonia graph nodes.
//
// Batch flooding replaces the minibatch mean loss J by
//
//	J~ = |J − b| + b
//
// so the optimizer descends while J > b and ascends while J < b. Individual
// flooding applies the same to every sample's loss ℓ_i and averages:
//
//	J~ = mean_i(|ℓ_i − b| + b)
//
// Apply puts either on top of a vector of per-sample losses (or, for batch
// flooding, a scalar mean loss) and returns the node to minimise together with a
// Stats value that records, at every forward pass, whether the step ascends:
//
//	cost, stats, err := flood.Apply(losses, flood.Batch, 0.8)
//	grads, err := gorgonia.Grad(cost, params...)
//	// run the graph; stats.LastAscent() tells whether this step ascended.
//
// Gorgonia differentiates a graph once, so build one objective per graph.
//
// Method None (and a level of 0 with Batch or Individual, as long as every
// loss is positive) computes the plain mean with exactly the same floating-point
// operations, so it reproduces plain training bit for bit.
//
// The package depends on nothing of floodtune's: it is math on a graph.
package flood
