#!/usr/bin/env bash
# Makes sure PgBouncer exists for the tests that run floodtune through it
# (storage's pgbouncer backend, reliability's TestPgBouncer*): installs
# Debian's pgbouncer package when it is missing and this runs as root. The
# package's service is not used: the tests start their own PgBouncer, in
# transaction-pooling mode, on a free loopback port in front of their own
# throw-away PostgreSQL. In CI a missing pgbouncer is a failure.
set -euo pipefail
if command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's pgbouncer for the PgBouncer tests..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
  exit 0
fi
echo "pgbouncer is missing: run 'sudo apt-get install pgbouncer' (or scripts/ensure-pgbouncer.sh as root) for the PgBouncer tests" >&2
[ -z "${CI:-}" ]
