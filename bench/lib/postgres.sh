# shellcheck shell=bash
# A throw-away PostgreSQL for the benchmark scripts, sourced by them:
#
#   . bench/lib/postgres.sh
#   trap 'stop_postgres; rm -rf "$work"' EXIT
#   bench_postgres NAME [SERVER OPTIONS]   # sets pg_url, pg_port, pg_desc
#
# bench_postgres takes $FLOODTUNE_BENCH_DATABASE_URL when it is set; else it
# makes sure of the server binaries (scripts/ensure-postgres.sh) and starts
# a server of its own on a free loopback port, with trust authentication,
# the given options and $PG_OPTIONS; it fails with a message naming NAME
# when it cannot. stop_postgres stops and removes that server.

# Set here for the scripts that source this file.
# shellcheck disable=SC2034
pgdir=""
pgbin=""
pg_url=""
pg_port=""
pg_desc=""

# as_postgres runs a command as the postgres user when this runs as root.
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# port_free says whether nothing listens on 127.0.0.1:$1.
port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints a loopback port that was free a moment ago.
free_port() {
  local port
  while :; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if port_free "$port"; then
      echo "$port"
      return
    fi
  done
}

# start_postgres NAME [OPTIONS] starts a throw-away server and sets pgbin,
# pgdir, pg_url and pg_port, or fails.
start_postgres() {
  local name=$1 opts=${2:-} initdb
  initdb=$(command -v initdb 2>/dev/null || true)
  if [ -n "$initdb" ]; then
    pgbin=$(dirname "$(readlink -f "$initdb")")
  else
    pgbin=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)
  fi
  [ -n "$pgbin" ] && [ -x "$pgbin/initdb" ] && [ -x "$pgbin/pg_ctl" ] || return 1
  if [ "$(id -u)" = 0 ]; then id postgres >/dev/null 2>&1 || return 1; fi
  pgdir=$(mktemp -d "/tmp/floodtune-$name-pg.XXXXXX")
  chmod 755 "$pgdir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$pgdir"; fi
  as_postgres "$pgbin/initdb" -D "$pgdir/data" -U postgres --auth=trust -E UTF8 --locale=C >"$pgdir/initdb.log" 2>&1 || return 1
  local port try
  for try in 1 2 3 4 5; do
    port=$(free_port)
    if as_postgres "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/server.log" -w \
      -o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 $opts ${PG_OPTIONS:-}" start >/dev/null; then
      pg_url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
      pg_port=$port
      return 0
    fi
    echo "$name.sh: the throw-away server did not start on port $port (attempt $try); its log:" >&2
    tail -n 5 "$pgdir/server.log" >&2 || true
  done
  return 1
}

# stop_postgres stops and removes the server start_postgres started, if any.
stop_postgres() {
  if [ -n "$pgdir" ]; then
    as_postgres "$pgbin/pg_ctl" -D "$pgdir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$pgdir"
  fi
}

# bench_postgres NAME [OPTIONS] sets pg_url, pg_port and pg_desc from
# $FLOODTUNE_BENCH_DATABASE_URL, or from a throw-away server; it fails, with
# what to do, when there is neither.
bench_postgres() {
  local name=$1 opts=${2:-}
  pg_url=${FLOODTUNE_BENCH_DATABASE_URL:-}
  if [ -n "$pg_url" ]; then
    pg_desc="PostgreSQL of \$FLOODTUNE_BENCH_DATABASE_URL"
    pg_port=$(sed -E 's|^[a-z]+://[^@/]*@?[^:/]*:?([0-9]*)/.*|\1|' <<<"$pg_url")
    pg_port=${pg_port:-5432}
    return 0
  fi
  FLOODTUNE_TEST_DATABASE_URL='' scripts/ensure-postgres.sh || true
  if ! start_postgres "$name" "$opts"; then
    echo "$name.sh: no PostgreSQL: set FLOODTUNE_BENCH_DATABASE_URL, or install the server binaries (scripts/ensure-postgres.sh as root, or apt-get install postgresql)" >&2
    return 1
  fi
  # shellcheck disable=SC2034 # for the caller
  pg_desc="throw-away PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), default settings${opts:+, $opts}${PG_OPTIONS:+ and $PG_OPTIONS}"
}
