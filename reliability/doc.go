// Package reliability holds the tests that kill, freeze, interrupt and race
// real floodtune processes against a real PostgreSQL, and check afterwards
// that no trial was lost or run twice. It has no code of its own; run it
// with `make test-reliability` (it also runs in `make test`).
package reliability
