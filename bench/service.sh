#!/usr/bin/env bash
# Ask/tell throughput of the HTTP API (floodtune serve: api.Server on
# 127.0.0.1 in the benchmark's process, client.Client over real TCP)
# against the Go path without HTTP (search.Study), on the same PostgreSQL
# server, in one run: 8, 32 and 128 concurrent clients, a fresh study of
# 1,000 trials per client count, path and round (3 rounds, alternating the
# paths' order), a trivial objective, the random sampler (the service's
# cost, not TPE's). It prints trials/s (median of the rounds), the p50 and
# p99 of ask, tell and report, the ratio HTTP/direct, the CPU time per
# trial of the benchmark's process, of PostgreSQL and of other programs
# (it warns when those used the machine), and a line per goal of the issue
# (HTTP >= 0.7x direct; ask p99 < 50 ms at 32 clients). See
# bench/service/main.go. Timings never fail it; a study whose trials are
# not exactly its budget, all complete, numbered 0..N-1, does.
#
# PostgreSQL: FLOODTUNE_BENCH_DATABASE_URL (a role that may create a schema
# in its database), else a throw-away server started from the local server
# binaries (Debian's postgresql; scripts/ensure-postgres.sh installs them
# when run as root) with its default settings plus PG_OPTIONS (e.g.
# PG_OPTIONS='-c fsync=off'), removed at the end.
#
# Usage: bench/service.sh [flags of bench/service...]
#   -clients 8,32,128   concurrent clients, one row pair each
#   -trials 1000        trials per study
#   -steps 1            reports per trial
#   -rounds 3           runs of each client count and path
#   -sampler random     or tpe, cmaes
#   -pool 16            pgx pool size of each store (both paths alike)
#   -paths direct,http  the paths measured
#   -cpuprofile FILE    a CPU profile of the timed runs
#   -csv FILE           every call's latency
# About 1.5 minutes on 2 cores (each HTTP run ends with about 5 s of
# clients told to wait while the last trials finish, which trials/s leaves
# out). It needs the machine to itself.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/floodtune-service.XXXXXX)
. bench/lib/postgres.sh
trap 'stop_postgres; rm -rf "$work"' EXIT
bench_postgres service || exit 1

echo "# floodtune $(git log -1 --format='%h %s' 2>/dev/null || echo '(no git)'); $(go version | cut -d' ' -f3-), $(nproc) CPUs; $pg_desc"
go -C bench build -o "$work/service" ./service
"$work/service" -db "$pg_url" "$@"
