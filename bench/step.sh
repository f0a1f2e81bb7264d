#!/usr/bin/env bash
# Step time of floodtune against PyTorch on this machine's CPU, same thread
# count, same model, batch and optimizer, measured in one run; rounds
# alternate between the two so that both see the same machine state.
# Usage: bench/step.sh   (env: ROUNDS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
tags=$(make -s print-tags)
go build -tags "$tags" -o bin/stepbench ./bench/stepbench
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's python3-torch for the comparison..." >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch >/dev/null
  else
    echo "python3-torch is missing: run 'sudo apt-get install python3-torch' for the comparison" >&2
  fi
fi
have_torch=0
/usr/bin/python3 -c 'import torch' 2>/dev/null && have_torch=1

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
declare -A ft pt
blas=""; tv=""; alloc=""
for threads in 1 2; do
  f=(); p=()
  for ((r = 0; r < rounds; r++)); do
    read -r ms a b < <(OPENBLAS_NUM_THREADS=$threads GOMAXPROCS=$(nproc) bin/stepbench -threads "$threads")
    f+=("$ms"); blas=$b; alloc=$a
    if [ $have_torch = 1 ]; then
      read -r ms v < <(OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads /usr/bin/python3 bench/torch_step.py "$threads")
      p+=("$ms"); tv=$v
    fi
  done
  ft[$threads]=$(printf '%s\n' "${f[@]}" | median)
  [ $have_torch = 1 ] && pt[$threads]=$(printf '%s\n' "${p[@]}" | median)
done
echo "MLP 784-500-500-10, batch 128, float32, flooded loss, SGD momentum; median of $rounds rounds"
echo "floodtune: ${blas//_/ }, ${alloc} bytes allocated per step; peer: ${tv//_/ }"
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "| threads | floodtune ms/step | PyTorch ms/step | floodtune / PyTorch |"
echo "|---|---|---|---|"
for threads in 1 2; do
  if [ $have_torch = 1 ]; then
    ratio=$(awk -v a="${ft[$threads]}" -v b="${pt[$threads]}" 'BEGIN {printf "%.2f", a / b}')
    echo "| $threads | ${ft[$threads]} | ${pt[$threads]} | ${ratio}× |"
  else
    echo "| $threads | ${ft[$threads]} | (not installed) | |"
  fi
done
