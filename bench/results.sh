#!/usr/bin/env bash
# The tables of docs/results.md. Usage: bench/results.sh [mnist|synthetic|all]
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
mkdir -p out
if [ "$what" = synthetic ] || [ "$what" = all ]; then
  echo "## gauss2d, 5% label noise (the flooding paper's setting; compare ../shared/reference)"
  LEVELS="0 0.05 0.1 0.2 0.3 0.4 0.5" SEEDS="0 1 2 3 4 5 6 7 8 9" bench/sweep.sh out/gauss2d.jsonl -- \
    --dataset gauss2d --train-size 100 --val-size 100 --test-size 20000 --label-noise 0.05 \
    --hidden 500,500,500,500 --optimizer adam --lr 0.001 --batch-size 50 --epochs 500
  echo
  echo "## sinusoid2d, 10% label noise, full batch"
  LEVELS="0 0.2 0.3 0.4" SEEDS="0 1 2 3 4 5 6 7 8 9" bench/sweep.sh out/sinusoid2d.jsonl -- \
    --dataset sinusoid2d --train-size 100 --val-size 100 --test-size 20000 --label-noise 0.1 \
    --hidden 500,500,500,500 --optimizer sgd --lr 0.01 --batch-size 100 --epochs 200
  echo
fi
if [ "$what" = mnist ] || [ "$what" = all ]; then
  echo "## MNIST, 20% label noise, MLP 500-500, momentum 0.9, lr 0.1, batch 128, 30 epochs"
  LEVELS="0 0.4 0.8 0.94 1.2" SEEDS="0 1" bench/sweep.sh out/mnist-noise20.jsonl -- \
    --dataset mnist --label-noise 0.2 --flood flood --hidden 500,500 --optimizer momentum \
    --lr 0.1 --batch-size 128 --epochs 30
fi
