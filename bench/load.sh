#!/usr/bin/env bash
# Load on loopback and the cost of a trial to the database (bench/load):
#
#   1. bench/load -mode load: 8, 64 and 256 concurrent workers on one study,
#      as goroutines of one process and split over PROCS processes,
#      directly and through PgBouncer (transaction pooling, a server pool of
#      BOUNCER_POOL); a fresh database and study of TRIALS trials per run,
#      the random sampler (the storage's cost, not TPE's); trials/s,
#      claim (Ask) and finish (Tell) p50/p99, errors by kind, CPU per trial
#      and connections; every run checks that no trial is lost or run twice
#      and fails loudly otherwise;
#   2. bench/load -mode cost: statements, transactions, WAL and bytes per
#      trial (pg_stat_statements, pg_stat_database, pg_stat_wal, a counting
#      proxy), the commit ceiling, connections per worker process, and the
#      capacity model of docs/scaling.md.
#
# PostgreSQL: FLOODTUNE_BENCH_DATABASE_URL (a role that may create
# databases; for the statement counts its server needs
# shared_preload_libraries=pg_stat_statements), else a throw-away server
# from the local server binaries (scripts/ensure-postgres.sh installs them
# when run as root) with its default settings, max_connections=300 (256
# direct workers) and pg_stat_statements preloaded, plus PG_OPTIONS;
# removed at the end. PgBouncer: Debian's pgbouncer (installed when
# missing and run as root), started here in front of that server on a free
# loopback port, transaction pooling, default_pool_size=BOUNCER_POOL, a "*"
# entry so that every fresh database goes through it; pgx uses the simple
# protocol through it (-bouncer-params). Migrations always run directly.
#
# Usage: bench/load.sh [flags of bench/load -mode load...]
#   TRIALS=2000  PROCS=4  BOUNCER_POOL=16  WORKERS=8,64,256
#   BOUNCER_PARAMS=...  URL parameters on the PgBouncer path: pgbouncer=transaction
#                       when storage/ reads that parameter, else
#                       default_query_exec_mode=simple_protocol (pgx's simple
#                       protocol, which needs no prepared statement)
#   MODES="load cost"   which parts to run
#   COST_ARGS=...       flags of bench/load -mode cost (e.g. -cost.trials 400)
#   MODEL_MAX_CONNECTIONS=100  the capacity model's max_connections
#                       (PostgreSQL's default; the throw-away server has 300
#                       for the 256 direct workers)
# About 4 minutes on 2 cores. It needs the machine to itself: the load
# average before and after each part is printed with its figures.
set -euo pipefail
cd "$(dirname "$0")/.."

trials=${TRIALS:-2000}
procs=${PROCS:-4}
bpool=${BOUNCER_POOL:-16}
workers=${WORKERS:-8,64,256}
modes=${MODES:-load cost}

work=$(mktemp -d /tmp/floodtune-load.XXXXXX)
chmod 755 "$work" # PgBouncer runs as postgres and reads its files here
bouncer_pid=""
. bench/lib/postgres.sh
cleanup() {
  if [ -n "$bouncer_pid" ]; then
    # runuser does not pass the signal on: stop PgBouncer itself.
    if [ "${real_pid:-0}" != 0 ]; then kill "$real_pid" 2>/dev/null || true; fi
    kill "$bouncer_pid" 2>/dev/null || true
    wait "$bouncer_pid" 2>/dev/null || true
  fi
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT

# start_pgbouncer starts PgBouncer in front of 127.0.0.1:$1 and sets
# bouncer_url and bouncer_pid.
start_pgbouncer() {
  local bin
  bin=$(command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer)
  [ -x "$bin" ] || return 1
  local dir="$work/pgbouncer" port try
  mkdir -p "$dir"
  for try in 1 2 3 4 5; do
  port=$(free_port)
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$1
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = $bpool
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
max_db_connections = 0
ignore_startup_parameters = extra_float_digits
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  echo '"postgres" ""' >"$dir/users.txt"
  if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir"; fi
  as_postgres "$bin" "$dir/pgbouncer.ini" >/dev/null 2>&1 &
  bouncer_pid=$!
  local _
  for _ in $(seq 1 50); do
    if ! kill -0 "$bouncer_pid" 2>/dev/null; then
      break # it stopped: the port was taken meanwhile, say
    fi
    if ! port_free "$port"; then
      bouncer_url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      # as_postgres runs it through runuser: its pid is PgBouncer's parent.
      real_pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null || echo "$bouncer_pid")
      return 0
    fi
    sleep 0.1
  done
  echo "load.sh: PgBouncer did not start on port $port (attempt $try); its log:" >&2
  tail -n 3 "$dir/pgbouncer.log" >&2 || true
  stale_pid=$(cat "$dir/pgbouncer.pid" 2>/dev/null || true)
  if [ -n "$stale_pid" ]; then kill "$stale_pid" 2>/dev/null || true; fi
  kill "$bouncer_pid" 2>/dev/null || true
  wait "$bouncer_pid" 2>/dev/null || true
  bouncer_pid=""
  done
  return 1
}

bench_postgres load "-c max_connections=300 -c shared_preload_libraries=pg_stat_statements" || exit 1

if [ -z "${BOUNCER_PARAMS:-}" ]; then
  if grep -q 'poolParam = "pgbouncer"' storage/storage.go 2>/dev/null; then
    BOUNCER_PARAMS=pgbouncer=transaction
  else
    BOUNCER_PARAMS=default_query_exec_mode=simple_protocol
  fi
fi

paths=direct
bouncer_url=""
real_pid=0
if ! command -v pgbouncer >/dev/null && ! [ -x /usr/sbin/pgbouncer ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "load.sh: installing Debian's pgbouncer..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer; } >/dev/null ||
      echo "load.sh: could not install pgbouncer" >&2
  fi
fi
if start_pgbouncer "$pg_port"; then
  paths=direct,pgbouncer
else
  echo "load.sh: no PgBouncer (apt-get install pgbouncer): the direct path only" >&2
fi

echo "# floodtune $(git log -1 --format='%h %s' 2>/dev/null || cat .head 2>/dev/null || echo '(no git)'); $(go version | cut -d' ' -f3-), $(nproc) CPUs; $pg_desc${bouncer_url:+; PgBouncer $("${PGBOUNCER:-pgbouncer}" --version 2>/dev/null | head -n 1 | awk '{print $2}')}"
go -C bench build -o "$work/load" ./load
for mode in $modes; do
  echo
  case $mode in
    load)
      "$work/load" -db "$pg_url" -bouncer "$bouncer_url" -bouncer-pid "$real_pid" -bouncer-pool "$bpool" -bouncer-params "$BOUNCER_PARAMS" \
        -paths "$paths" -workers "$workers" -procs "1,$procs" -trials "$trials" "$@"
      ;;
    cost)
      # shellcheck disable=SC2086 # COST_ARGS is a list of flags
      "$work/load" -mode cost -db "$pg_url" -cost.max-connections "${MODEL_MAX_CONNECTIONS:-100}" \
        ${pgdir:+-cost.fsync-dir "$pgdir/data/pg_wal"} ${COST_ARGS:-}
      ;;
    *)
      echo "load.sh: MODES: want load and/or cost, got $mode" >&2
      exit 2
      ;;
  esac
done
