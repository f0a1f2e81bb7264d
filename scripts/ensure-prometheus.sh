#!/usr/bin/env bash
# Makes sure Prometheus's server and promtool exist for the end-to-end
# metrics test: installs Debian's prometheus package when they are missing
# and this runs as root (the package's service is not started: the test runs
# its own server on a free loopback port).
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's prometheus for the end-to-end metrics test..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  exit 0
fi
echo "prometheus is missing: run 'sudo apt-get install prometheus' for the end-to-end metrics test" >&2
[ -z "${CI:-}" ]
