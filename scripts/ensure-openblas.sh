#!/usr/bin/env bash
# Before make demo: a training step is 3-7 times faster with OpenBLAS than
# with the pure-Go BLAS, and the demo takes 70-90 s on 2 cores with it
# against 8-12 minutes without. Installs Debian's libopenblas-dev when
# it does not link and this runs as root; otherwise says, before the demo
# starts, what it will cost and the one command that makes it fast.
set -euo pipefail
cc=${CC:-cc}
links() {
  printf 'void openblas_set_num_threads(int);int main(void){openblas_set_num_threads(1);return 0;}' |
    "$cc" -x c - -lopenblas -o /dev/null >/dev/null 2>&1
}
if [ "${OPENBLAS:-}" = 0 ] || links; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's libopenblas-dev: a training step is 3-7 times faster with it..." >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopenblas-dev gcc libc6-dev >/dev/null
  links && exit 0
fi
cat >&2 <<'MSG'
floodtune: OpenBLAS is not installed, so the demo trains with the pure-Go BLAS:
8-12 minutes on 2 cores instead of 70-90 s. To make it fast, stop it now
(Ctrl-C) and run:

    sudo apt-get install libopenblas-dev && make demo

MSG
