// Package storagebench compares floodtune's storage with Goptuna's own
// gorm-based storage (github.com/c-bata/goptuna/rdb.v2) on the same
// PostgreSQL server, in the same run. It holds only tests and benchmarks:
//
//   - BenchmarkAskTell: trials per second of 8 workers, each running
//     goptuna's Study.Optimize with a trivial objective (one SuggestFloat,
//     one SuggestInt), with the random and the TPE sampler, on floodtune's
//     PostgreSQL and SQLite stores and on rdb.v2 over PostgreSQL;
//   - BenchmarkStudy: loading a study of 1,000 and 10,000 trials with
//     GetAllTrials, and one TPE suggestion on it (which reloads every trial),
//     on the same backends and on Goptuna's in-memory storage as a floor.
//
// Every backend gets its own fresh database (pgtest.Database) or SQLite file,
// so that no backend pays for another's rows. After the benchmarks, TestMain
// prints the figures as Markdown tables with floodtune-PostgreSQL's speed-up
// over rdb.v2. It lives in the bench module (bench/go.mod), which keeps
// gorm out of floodtune's requirements. Run it with bench/storage.sh, or:
//
//	go -C bench test -run '^$' -bench . ./storage/
//
// A plain `go -C bench test ./storage/` runs only the correctness tests: every
// backend ends a short concurrent optimisation with the expected complete
// trials, and every backend holds and returns the same study data.
// Timings never decide whether a test passes.
package storagebench
