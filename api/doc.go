// Package api serves the search over HTTP/JSON: training code in any
// language asks for a trial, reports its epochs and tells its outcome,
// without the database's credentials. It is the handler of `floodtune
// serve`; its contract is the OpenAPI document OpenAPI (openapi.yaml),
// which the tests check every request and answer against.
//
// The service keeps the guarantees of floodtune's own workers, because it
// is built on search's ask/tell core: leases on the database's clock,
// trials whose lease ran out failed and retried by the next ask, every
// write fenced by its lease (a late report or tell is refused with 409),
// and the exact budget. It holds no state of its own between requests, so
// any number of replicas serve one storage, and a client may send each
// call to any of them.
//
// A lease is a token the ask answers with. The trial is recorded as
// running under a worker name derived from it (the worker's label and a
// hash of the token, never the token), so that the token is the lease's
// only key and every replica recognises it.
//
//	h := &api.Server{Store: st, Lease: 30 * time.Second, Gatherer: reg}
//	err := h.Run(ctx, api.Listen{Addr: "127.0.0.1:8321"})
package api
