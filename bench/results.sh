#!/usr/bin/env bash
# The tables of docs/results.md, each printed after its runs; the synthetic
# settings also against the PyTorch reference in bench/reference/.
# Usage: bench/results.sh [gauss2d|sinusoid2d|mnist|all]...   (default: all)
#   env OUT=DIR   where the runs' JSON lines go (default: out)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out}
mkdir -p "$out"
[ $# -gt 0 ] || set -- all
seeds10="0 1 2 3 4 5 6 7 8 9"
for what in "$@"; do
  case $what in
  gauss2d | all)
    echo "## gauss2d, 5% label noise (the flooding paper's setting, as in bench/reference/)"
    LEVELS="0 0.05 0.1 0.2 0.3 0.4 0.5" SEEDS=$seeds10 bench/sweep.sh "$out/gauss2d.jsonl" -- \
      --dataset gauss2d --train-size 100 --val-size 100 --test-size 20000 --label-noise 0.05 \
      --hidden 500,500,500,500 --optimizer adam --lr 0.001 --batch-size 50 --epochs 500
    echo
    python3 bench/reference/compare.py "$out/gauss2d.jsonl"
    echo
    ;;&
  sinusoid2d | all)
    echo "## sinusoid2d, 10% label noise, full batch, SGD 0.01 with momentum 0.9"
    LEVELS="0 0.2 0.3 0.35 0.4" SEEDS=$seeds10 bench/sweep.sh "$out/sinusoid2d.jsonl" -- \
      --dataset sinusoid2d --train-size 100 --val-size 100 --test-size 20000 --label-noise 0.1 \
      --hidden 500,500,500,500 --optimizer momentum --momentum 0.9 --lr 0.01 --batch-size 100 --epochs 200
    echo
    python3 bench/reference/compare.py "$out/sinusoid2d.jsonl"
    echo
    ;;&
  mnist | all)
    echo "## MNIST, 20% label noise, MLP 500-500, momentum 0.9, lr 0.1, batch 128, 30 epochs"
    LEVELS="0 0.4 0.8 0.94 1.2" SEEDS="0 1" bench/sweep.sh "$out/mnist-noise20.jsonl" -- \
      --dataset mnist --label-noise 0.2 --flood flood --hidden 500,500 --optimizer momentum \
      --lr 0.1 --batch-size 128 --epochs 30
    echo
    ;;
  gauss2d | sinusoid2d) ;;
  *)
    echo "usage: bench/results.sh [gauss2d|sinusoid2d|mnist|all]..." >&2
    exit 2
    ;;
  esac
done
