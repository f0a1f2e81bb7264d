#!/usr/bin/env bash
# One TPE suggestion as the study grows (bench/tpecost): 1,000, 10,000 and
# 50,000 complete trials in one study, the storage time of a suggestion
# (reading the study's trials) apart from the sampler's, cold (the first
# suggestion of a fresh process) and warm (the following ones), and Ask end
# to end; then a CPU profile of the warm Asks at the largest size (top 25
# by cumulative time). The goal: one suggestion at 50,000 trials under 50 ms
# of storage time. Timings never fail it.
#
# PostgreSQL: FLOODTUNE_BENCH_DATABASE_URL (a role that may create
# databases), else a throw-away server from the local server binaries
# (scripts/ensure-postgres.sh installs them when run as root) with its
# default settings plus PG_OPTIONS, removed at the end.
#
# Usage: bench/tpecost.sh [flags of bench/tpecost...]
#   -sizes 1000,10000,50000   study sizes
#   -reps 5                   warm repetitions (medians)
#   -epochs 10 -attrs 11      what each stored trial holds
# About 3 minutes on 2 cores, most of it filling the study.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/floodtune-tpecost.XXXXXX)
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

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

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
  pgdir=$(mktemp -d /tmp/floodtune-tpecost-pg.XXXXXX)
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
    echo "tpecost.sh: the throw-away server did not start on port $port (attempt $try); its log:" >&2
    tail -n 5 "$pgdir/server.log" >&2 || true
  done
  return 1
}

pg_url=${FLOODTUNE_BENCH_DATABASE_URL:-}
pg_desc="PostgreSQL of \$FLOODTUNE_BENCH_DATABASE_URL"
if [ -z "$pg_url" ]; then
  FLOODTUNE_TEST_DATABASE_URL='' scripts/ensure-postgres.sh || true
  if ! start_postgres; then
    echo "tpecost.sh: no PostgreSQL: set FLOODTUNE_BENCH_DATABASE_URL, or install the server binaries (scripts/ensure-postgres.sh as root, or apt-get install postgresql)" >&2
    exit 1
  fi
  pg_desc="throw-away PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), default settings${PG_OPTIONS:+ and $PG_OPTIONS}"
fi

echo "# floodtune $(git log -1 --format='%h %s' 2>/dev/null || echo '(no git)'); $(go version | cut -d' ' -f3-), $(nproc) CPUs; $pg_desc"
go -C bench build -o "$work/tpecost" ./tpecost
"$work/tpecost" -db "$pg_url" -cpuprofile "$work/ask.pprof" "$@"
echo
echo "CPU profile of the warm Asks at the largest size (this process; top 25 by cumulative time):"
echo
go tool pprof -top -cum -nodecount=25 "$work/tpecost" "$work/ask.pprof" 2>/dev/null | sed -n '1,35p' | sed 's/^/    /'
