#!/usr/bin/env bash
# Step time of floodtune against PyTorch on this machine's CPU: the same MLP,
# batch, loss and optimizer at 1 and 2 threads, then the same LeNet-style
# convolutional network at 1 thread, measured in one run. Rounds alternate
# between the programs so that both see the same machine state.
#
# PyTorch runs in two configurations: torch.set_num_threads(N) with OpenBLAS
# limited to N threads as well (the literal "N threads"), and torch's intra-op
# pool at 1 thread with OpenBLAS at N threads (what Debian's torch does by
# default on this machine). The ratio is against the faster of the two.
# Usage: bench/step.sh   (env: ROUNDS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
tags=$(make -s print-tags)
go -C bench build -tags "$tags" -o ../bin/stepbench ./stepbench
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
torch() { # torch intra-op threads, BLAS threads
  OPENBLAS_NUM_THREADS=$2 OMP_NUM_THREADS=$1 /usr/bin/python3 bench/torch_step.py "$1"
}
torch_cnn() { OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/torch_step.py 1 20 5 cnn; }
declare -A ft pa pb
blas=""; tv=""; alloc=""
for threads in 1 2; do
  f=(); a=(); b=()
  for ((r = 0; r < rounds; r++)); do
    read -r ms al bl < <(OPENBLAS_NUM_THREADS=$threads bin/stepbench -threads "$threads")
    f+=("$ms"); blas=$bl; alloc=$al
    if [ $have_torch = 1 ]; then
      read -r ms v < <(torch "$threads" "$threads"); a+=("$ms"); tv=$v
      if [ "$threads" != 1 ]; then read -r ms v < <(torch 1 "$threads"); b+=("$ms"); fi
    fi
  done
  ft[$threads]=$(printf '%s\n' "${f[@]}" | median)
  if [ $have_torch = 1 ]; then
    pa[$threads]=$(printf '%s\n' "${a[@]}" | median)
    pb[$threads]=${pa[$threads]}
    [ "$threads" != 1 ] && pb[$threads]=$(printf '%s\n' "${b[@]}" | median)
  fi
done
echo "MLP 784-500-500-10, batch 128, float32, flooded loss, SGD with momentum; median of $rounds rounds of 5×100 steps"
echo "floodtune: ${blas//_/ }, ${alloc} bytes allocated per step; PyTorch: ${tv//_/ } (Debian), OpenBLAS as above"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
echo "| threads | floodtune ms/step | PyTorch, N threads everywhere | PyTorch, 1 intra-op + N BLAS threads | floodtune / faster PyTorch |"
echo "|---|---|---|---|---|"
for threads in 1 2; do
  if [ $have_torch = 1 ]; then
    best=$(printf '%s\n%s\n' "${pa[$threads]}" "${pb[$threads]}" | sort -g | head -1)
    ratio=$(awk -v a="${ft[$threads]}" -v b="$best" 'BEGIN {printf "%.2f", a / b}')
    other=${pb[$threads]}; [ "$threads" = 1 ] && other="(same)"
    echo "| $threads | ${ft[$threads]} | ${pa[$threads]} | $other | **${ratio}×** |"
  else
    echo "| $threads | ${ft[$threads]} | (python3-torch not installed) | | |"
  fi
done

# The convolutional network, one thread: floodtune against PyTorch (whose
# convolutions run on oneDNN), then where floodtune's step spends its time.
f=(); a=()
for ((r = 0; r < rounds; r++)); do
  read -r ms al bl < <(OPENBLAS_NUM_THREADS=1 bin/stepbench -model cnn -threads 1 -steps 20)
  f+=("$ms"); alloc=$al
  if [ $have_torch = 1 ]; then
    read -r ms v < <(torch_cnn); a+=("$ms")
  fi
done
fcnn=$(printf '%s\n' "${f[@]}" | median)
echo
echo "LeNet-style CNN on 1×28×28 (conv 5×5 1→16 pad 2, pool 2, conv 5×5 16→32 pad 2, pool 2, dense 1568→256→10), batch 128, float32, flooded loss, SGD with momentum, one thread; median of $rounds rounds of 5×20 steps; floodtune allocates ${alloc} bytes per step"
echo
echo "| threads | floodtune ms/step | PyTorch ms/step (oneDNN convolutions) | floodtune / PyTorch |"
echo "|---|---|---|---|"
if [ $have_torch = 1 ]; then
  tcnn=$(printf '%s\n' "${a[@]}" | median)
  echo "| 1 | $fcnn | $tcnn | **$(awk -v a="$fcnn" -v b="$tcnn" 'BEGIN {printf "%.2f", a / b}')×** |"
else
  echo "| 1 | $fcnn | (python3-torch not installed) | |"
fi
echo
echo "Where floodtune's CNN step spends its time (one thread, 20 steps):"
echo
OPENBLAS_NUM_THREADS=1 bin/stepbench -model cnn -threads 1 -steps 20 -breakdown
