#!/usr/bin/env bash
# One hyperparameter search run by floodtune and by Optuna + PyTorch on this
# machine, in one run: the study of bench/peer/mnist-noise20.yaml (MNIST with
# 20% label noise, MLP 500-500, SGD with momentum, TPE over the flood level
# in [0, 1.5] and the learning rate log-uniform in [0.01, 0.3], trial 0 plain
# training), the same data (floodtune dataset export), the same number of
# trials and epochs, 2 workers. Prints wall time, trials per hour and the best
# validation accuracy of each, the ratios, and floodtune's speed-up from 1 to
# 2 workers.
#
#   floodtune:        study create + study optimize --workers 2, one process,
#                     on a fresh SQLite file
#   Optuna + PyTorch: bench/peer/optuna_torch.py, 2 processes sharing a fresh
#                     SQLite file, one torch thread and one OpenBLAS thread each
#
# Usage: bench/peer.sh
# env: TRIALS (16), EPOCHS (10), TRAIN_SIZE (48000), VAL_SIZE (12000), SEED
#      (1, the study's seed: its data split, noise, samplers and trial seeds):
#      the study; SCALING=0 skips floodtune's 1-worker run; SCALING_PEER=1
#      also runs Optuna + PyTorch with 1 process;
#      FLOODTUNE_BIN (bin/floodtune): where to build floodtune.
# Files: out/peer/ (spec, exported data, databases, logs, results).
set -euo pipefail
cd "$(dirname "$0")/.."

trials=${TRIALS:-16}
epochs=${EPOCHS:-10}
train_size=${TRAIN_SIZE:-48000}
val_size=${VAL_SIZE:-12000}
seed=${SEED:-1}
bin=${FLOODTUNE_BIN:-bin/floodtune}
out=out/peer
py=/usr/bin/python3
for v in trials epochs train_size val_size; do
  if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
    echo "bench/peer.sh: ${v^^} must be a positive integer, got '${!v}'" >&2
    exit 2
  fi
done
if ! [[ $seed =~ ^[0-9]+$ ]]; then
  echo "bench/peer.sh: SEED must be an integer ≥ 0, got '$seed'" >&2
  exit 2
fi
if ! [[ ${SCALING:-1} =~ ^[01]$ ]]; then
  echo "bench/peer.sh: SCALING must be 0 or 1, got '${SCALING}'" >&2
  exit 2
fi

# One BLAS thread per worker, for every program: Debian's torch multiplies
# in OpenBLAS, whose threads torch.set_num_threads does not limit.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

if ! $py -c 'import torch, optuna' 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's python3-torch and python3-optuna for the comparison..." >&2
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq python3-torch python3-optuna >/dev/null
  else
    echo "bench/peer.sh: python3-torch or python3-optuna is missing: run 'sudo apt-get install python3-torch python3-optuna'" >&2
    exit 1
  fi
fi

echo "building $bin..." >&2
make -s build BIN="$bin"
mkdir -p "$out"
log=$out/peer.log
: >"$log"

spec=$out/spec.yaml
sed -E -e "s/\btrials: [0-9]+/trials: $trials/" -e "s/\bepochs: [0-9]+/epochs: $epochs/" \
  -e "s/\btrain_size: [0-9]+/train_size: $train_size/" -e "s/\bval_size: [0-9]+/val_size: $val_size/" \
  -e "s/\bseed: [0-9]+/seed: $seed/" bench/peer/mnist-noise20.yaml >"$spec"
for want in "trials: $trials" "epochs: $epochs" "train_size: $train_size" "val_size: $val_size" "seed: $seed"; do
  grep -q "$want" "$spec" || { echo "bench/peer.sh: could not set '$want' in $spec" >&2; exit 1; }
done

echo "exporting the study's data to $out/data..." >&2
"$bin" dataset export --spec "$spec" --out "$out/data" >>"$log"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }
runs=()
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

run_floodtune() { # workers
  local w=$1 db=$out/floodtune-w$1.db t0 wall
  rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
  echo "floodtune, $w worker(s): $trials trials of $epochs epochs..." >&2
  t0=$(now)
  "$bin" study create peer --spec "$spec" --storage "sqlite:$db" >>"$log"
  "$bin" study optimize peer --workers "$w" --metrics-addr '' --storage "sqlite:$db" >>"$log" 2>&1
  wall=$(since "$t0")
  "$bin" study trials peer --format json --storage "sqlite:$db" >"$out/floodtune-w$w.trials.json"
  "$bin" study best peer --format json --storage "sqlite:$db" >"$out/floodtune-w$w.best.json"
  runs+=("floodtune:$w:$wall:$out/floodtune-w$w.trials.json:$out/floodtune-w$w.best.json")
}

run_optuna() { # workers
  local w=$1 db=$out/optuna-w$1.db t0 wall i p failed=0
  local url=sqlite:///$PWD/$db
  rm -f "$db" "$db-journal"
  echo "Optuna + PyTorch, $w process(es): $trials trials of $epochs epochs..." >&2
  t0=$(now)
  $py bench/peer/optuna_torch.py create --spec "$spec" --storage "$url" --study peer >>"$log"
  pids=()
  for ((i = 0; i < w; i++)); do
    $py bench/peer/optuna_torch.py work --spec "$spec" --storage "$url" --study peer --data "$out/data" --worker "$i" >>"$log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  pids=()
  wall=$(since "$t0")
  if [ $failed = 1 ]; then
    echo "bench/peer.sh: an Optuna worker failed; see $log" >&2
    exit 1
  fi
  $py bench/peer/optuna_torch.py summary --storage "$url" --study peer >"$out/optuna-w$w.json"
  runs+=("optuna+pytorch:$w:$wall:$out/optuna-w$w.json")
}

run_floodtune 2
run_optuna 2
if [ "${SCALING:-1}" = 1 ]; then
  run_floodtune 1
fi
if [ "${SCALING_PEER:-0}" = 1 ]; then
  run_optuna 1
fi

echo
echo "MNIST, 20% label noise: $train_size train / $val_size validation images; MLP 500-500, SGD with momentum 0.9, batch 128, $epochs epochs a trial; TPE over the flood level [0, 1.5] and lr log [0.01, 0.3], $trials trials (trial 0 plain training), study seed $seed; SQLite"
echo "$("$bin" version | paste -sd ';' | sed 's/;/, /g'); $($py -c 'import torch, optuna; print(f"PyTorch {torch.__version__}, Optuna {optuna.__version__}")') (Debian); 1 BLAS thread per worker"
echo "machine: $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo
$py bench/peer/report.py "${runs[@]}" | tee "$out/report.md"
