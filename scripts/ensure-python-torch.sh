#!/usr/bin/env bash
# Makes sure Debian's python3 can import torch and numpy, for the tests of
# the Python client and the PyTorch example worker (a Python worker and a Go
# worker sharing a study through floodtune serve): installs Debian's
# python3-torch when it is missing and this runs as root. The tests use
# /usr/bin/python3, Debian's, whatever python3 comes first on PATH.
set -euo pipefail
py=/usr/bin/python3
if [ -x "$py" ] && "$py" -c 'import torch, numpy' >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's python3-torch for the Python worker's tests..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-torch python3-numpy >/dev/null
  exit 0
fi
echo "Debian's python3-torch is missing: run 'sudo apt-get install python3-torch' for the Python worker's tests" >&2
[ -z "${CI:-}" ]
