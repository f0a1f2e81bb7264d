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
pgdir=""
pgbin=""
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  if [ -n "$pgdir" ]; then
    as_postgres "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pgdir"
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# port_free says whether nothing listens on 127.0.0.1:$1.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_postgres starts a throw-away server and sets pg_url, or fails.
start_postgres() {
  local initdb
  initdb=$(command -v initdb 2>/dev/null || true)
  if [ -n "$initdb" ]; then
    pgbin=$(dirname "$(readlink -f "$initdb")")
  else
    pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  fi
  [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ] || return 1
  if [ "$(id -u)" = 0 ]; then id postgres >/dev/null 2>&1 || return 1; fi
  pgdir=$(mktemp -d /tmp/floodtune-service-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pgdir"; fi
  as_postgres "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$pgdir/initdb.log" 2>&1 || return 1
  local port try
  for try in 1 2 3 4 5; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_free "$port" || continue
    if as_postgres "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
      -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 ${PG_OPTIONS:-}" start >/dev/null; then
      pg_url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      return 0
    fi
    echo "service.sh: the throw-away server did not start on port $port (attempt $try); its log:" >&2
    tail -n 5 "$pgdir/server.log" >&2 || true
  done
  return 1
}

pg_url=${FLOODTUNE_BENCH_DATABASE_URL:-}
pg_desc="PostgreSQL of \$FLOODTUNE_BENCH_DATABASE_URL"
if [ -z "$pg_url" ]; then
  FLOODTUNE_TEST_DATABASE_URL='' scripts/ensure-postgres.sh || true
  if ! start_postgres; then
    echo "service.sh: no PostgreSQL: set FLOODTUNE_BENCH_DATABASE_URL, or install the server binaries (scripts/ensure-postgres.sh as root, or apt-get install postgresql)" >&2
    exit 1
  fi
  pg_desc="throw-away PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), default settings${PG_OPTIONS:+ and $PG_OPTIONS}"
fi

echo "# floodtune $(git log -1 --format='%h %s' 2>/dev/null || echo '(no git)'); $(go version | cut -d' ' -f3-), $(nproc) CPUs; $pg_desc"
go -C bench build -o "$work/service" ./service
"$work/service" -db "$pg_url" "$@"
