#!/usr/bin/env bash
# Trains one setting at several flood levels and seeds with `floodtune train
# --json`, appends the results to a JSON-lines file and prints a table (mean ±
# sd over seeds per level).
#
# Usage: bench/sweep.sh OUT.jsonl -- TRAIN FLAGS...
#   env LEVELS="0 0.1 0.2"  flood levels (default "0")
#       SEEDS="0 1 2"       seeds (default "0 1 2")
#       JOBS=N              runs at a time (default: the number of cores)
# Each run uses one BLAS thread.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
shift
[ "${1:-}" = "--" ] && shift
levels=${LEVELS:-0}
seeds=${SEEDS:-"0 1 2"}
jobs=${JOBS:-$(nproc)}
bin=${FLOODTUNE:-bin/floodtune}
[ -x "$bin" ] || make build >/dev/null
mkdir -p "$(dirname "$out")"
: >"$out"
for seed in $seeds; do
  for b in $levels; do
    printf '%q ' "$bin" train "$@" --flood-level "$b" --seed "$seed" --threads 1 --json
    printf '>> %q\n' "$out"
  done
done | xargs -P "$jobs" -I{} sh -c '{}'
python3 bench/table.py "$out"
