#!/usr/bin/env bash
# Make sure the PostgreSQL server binaries (initdb, postgres) exist, so that
# the tests of internal/pgtest users can start a throw-away server.
#
#   FLOODTUNE_TEST_DATABASE_URL is set          -> nothing to do
#   found in PATH or /usr/lib/postgresql/*/bin  -> nothing to do
#   else, as root                               -> apt-get install postgresql
#   else                                        -> say how; exit 1 if CI is set
set -euo pipefail

if [ -n "${FLOODTUNE_TEST_DATABASE_URL:-}" ]; then
  exit 0 # the tests use that server
fi

have_initdb() {
  command -v initdb >/dev/null 2>&1 && return 0
  local f
  for f in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$f" ] && return 0
  done
  return 1
}

if have_initdb; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: installing PostgreSQL (apt-get install postgresql)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  have_initdb && exit 0
  echo "ensure-postgres: postgresql is installed but initdb is still not found" >&2
  exit 1
fi

cat >&2 <<'MSG'
ensure-postgres: no PostgreSQL server binaries (initdb) in PATH or /usr/lib/postgresql/*/bin.
The database tests need one of:
  - the server binaries: sudo apt-get install postgresql   (Debian/Ubuntu)
  - an existing server: export FLOODTUNE_TEST_DATABASE_URL=postgres://user:password@host:5432/db
Without them the database tests are skipped (and fail when CI is set).
MSG
if [ -n "${CI:-}" ]; then
  exit 1
fi
exit 0
