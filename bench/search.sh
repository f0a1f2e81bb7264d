#!/usr/bin/env bash
# Time to target of whole hyperparameter searches, floodtune against
# Optuna + PyTorch, in one run on 2 workers. For every setting and seed, one
# search after another (never two at once), each on the same data with the
# same budget of trials and epochs:
#
#   floodtune-current            floodtune as a generic tool: the setting's
#                                spec (bench/search/settings/), TPE, each
#                                trial valued at its last epoch
#   floodtune-flood-aware        + bench/search/variants/flood-aware.yaml
#                                (common seeds, the best epoch's value,
#                                early stopping)
#   floodtune-flood-aware-prior  + bench/search/variants/noise-prior.yaml
#                                (the flood-level range centred on the
#                                noise's irreducible loss)
#   optuna-tpe                   bench/peer/optuna_torch.py: TPE with the
#                                constant liar, no pruning
#   optuna-tpe-hyperband         the same with Optuna's HyperbandPruner
#   optuna-tpe-sh                the same with its SuccessiveHalvingPruner
#
# floodtune: study create + study optimize --workers 2, one process, on a
# fresh SQLite file. Optuna + PyTorch: 2 processes on a fresh SQLite file,
# the data of `floodtune dataset export`. One BLAS thread per worker.
# bench/search/report.py then prints, per setting and seed, the time each
# search took to reach the best validation accuracy of optuna-tpe (T) and
# 99% of it, its wall time, the epochs it trained and the trial it chose,
# the ratios of floodtune's times to the peers', and a summary over seeds.
#
# Usage: bench/search.sh
# env: SETTINGS ("mnist-noise20 mnist-noise40 gauss2d": names of
#      bench/search/settings/*.yaml); SEEDS ("1 2 3": the study seeds: data
#      split, noise, samplers, trial seeds); TRIALS (12); EPOCHS (each
#      setting's own); VARIANTS ("all": the three floodtune searches and the
#      peers of PEER_PRUNERS, or a list of the names above); PEER_PRUNERS
#      ("none hyperband": of none, hyperband, successive_halving);
#      FLOODTUNE_BIN (bin/floodtune): where to build floodtune.
# Files: out/search/SETTING/seedSEED/ (the data, and per search its spec,
#      database, log, trials, best trial and run.json), out/search/report.md.
set -euo pipefail
cd "$(dirname "$0")/.."

settings=${SETTINGS-mnist-noise20 mnist-noise40 gauss2d}
seeds=${SEEDS-1 2 3}
trials=${TRIALS:-12}
epochs=${EPOCHS:-}
peer_pruners=${PEER_PRUNERS-none hyperband}
variants=${VARIANTS:-all}
bin=${FLOODTUNE_BIN:-bin/floodtune}
dir=bench/search
out=out/search
py=/usr/bin/python3
workers=2

die() { echo "bench/search.sh: $*" >&2; exit 2; }

floodtune_variants="floodtune-current floodtune-flood-aware floodtune-flood-aware-prior floodtune-median floodtune-sh"
# Not part of "all": what forking saves (on a setting whose trials share
# their configuration but for the level, e.g. mnist-noise20-level).
extra_variants="floodtune-flood-aware-nofork"
peer_variants="optuna-tpe optuna-tpe-hyperband optuna-tpe-sh"

# fragments VARIANT: the fragments of bench/search/variants/ that a
# floodtune search merges into the setting's spec, in order.
fragments() {
  case $1 in
    floodtune-current) ;;
    floodtune-flood-aware) echo "$dir/variants/flood-aware.yaml" ;;
    floodtune-flood-aware-prior) echo "$dir/variants/flood-aware.yaml $dir/variants/noise-prior.yaml" ;;
    floodtune-median) echo "$dir/variants/pruner-median.yaml" ;;
    floodtune-sh) echo "$dir/variants/pruner-sh.yaml" ;;
    floodtune-flood-aware-nofork) echo "$dir/variants/flood-aware.yaml $dir/variants/no-fork.yaml" ;;
  esac
}

# pruner_of VARIANT / peer_of PRUNER: a peer search's pruner and back.
pruner_of() {
  case $1 in
    optuna-tpe) echo none ;;
    optuna-tpe-hyperband) echo hyperband ;;
    optuna-tpe-sh) echo successive_halving ;;
  esac
}
peer_of() {
  case $1 in
    none) echo optuna-tpe ;;
    hyperband) echo optuna-tpe-hyperband ;;
    successive_halving) echo optuna-tpe-sh ;;
  esac
}

known_settings() {
  local f names=()
  for f in "$dir"/settings/*.yaml; do
    f=${f##*/}
    names+=("${f%.yaml}")
  done
  echo "${names[*]}"
}

read -r -a setting_list <<<"$settings"
read -r -a seed_list <<<"$seeds"
read -r -a pruner_list <<<"$peer_pruners"
read -r -a variant_list <<<"$variants"
[ ${#setting_list[@]} -gt 0 ] || die "SETTINGS is empty; name some of: $(known_settings)"
for s in "${setting_list[@]}"; do
  if ! [[ $s =~ ^[A-Za-z0-9][A-Za-z0-9_.-]*$ ]] || [ ! -f "$dir/settings/$s.yaml" ]; then
    die "SETTINGS: unknown setting '$s' (known: $(known_settings))"
  fi
done
[ ${#seed_list[@]} -gt 0 ] || die "SEEDS is empty"
for s in "${seed_list[@]}"; do
  [[ $s =~ ^[0-9]+$ ]] || die "SEEDS: each seed must be an integer ≥ 0, got '$s'"
done
[[ $trials =~ ^[1-9][0-9]*$ ]] || die "TRIALS must be a positive integer, got '$trials'"
[[ -z $epochs || $epochs =~ ^[1-9][0-9]*$ ]] || die "EPOCHS must be a positive integer, got '$epochs'"
for p in "${pruner_list[@]}"; do
  [ -n "$(peer_of "$p")" ] || die "PEER_PRUNERS: unknown pruner '$p' (want none, hyperband or successive_halving)"
done
if [ "${variant_list[*]}" = all ]; then
  read -r -a variant_list <<<"$floodtune_variants"
  for p in "${pruner_list[@]}"; do variant_list+=("$(peer_of "$p")"); done
fi
[ ${#variant_list[@]} -gt 0 ] || die "VARIANTS is empty"
for v in "${variant_list[@]}"; do
  [[ " $floodtune_variants $extra_variants $peer_variants " == *" $v "* ]] || die "VARIANTS: unknown search '$v' (want all or some of: $floodtune_variants $extra_variants $peer_variants)"
done
# The searches in their fixed order, each once.
order=()
peers=0
for v in $floodtune_variants $extra_variants $peer_variants; do
  if [[ " ${variant_list[*]} " == *" $v "* ]]; then
    order+=("$v")
    if [ -n "$(pruner_of "$v")" ]; then peers=1; fi
  fi
done

# One BLAS thread per worker, for every program: Debian's torch multiplies
# in OpenBLAS, whose threads torch.set_num_threads does not limit.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

# apt_install WHY PACKAGE...: installs Debian packages when run as root.
apt_install() {
  local why=$1
  shift
  if [ "$(id -u)" != 0 ]; then
    echo "bench/search.sh: $why: run 'sudo apt-get install $*'" >&2
    exit 1
  fi
  echo "installing Debian's $*..." >&2
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
}

# peer_blas: the BLAS library that torch multiplies with (Debian's torch
# links libblas.so.3, which is the reference BLAS unless OpenBLAS is there).
peer_blas() {
  $py -c 'import torch; torch.ones(64, 64) @ torch.ones(64, 64); print(open("/proc/self/maps").read())' 2>/dev/null |
    grep -o -m1 '/[^ ]*\(openblas\|blis\|libblas\|mkl\)[^ ]*\.so[^ ]*' || true
}

if [ $peers = 1 ]; then
  if ! $py -c 'import torch, optuna, yaml' 2>/dev/null; then
    apt_install "a Python module of the peer (torch, optuna, yaml) is missing" python3-torch python3-optuna python3-yaml libopenblas0
  fi
  # With the reference BLAS the peer would train several times slower than
  # it does as Debian recommends it (python3-torch recommends libopenblas0).
  if [[ $(peer_blas) != *openblas* ]]; then
    apt_install "torch multiplies with $(peer_blas || true) rather than OpenBLAS" libopenblas0
    if [[ $(peer_blas) != *openblas* ]]; then
      echo "bench/search.sh: torch still multiplies with $(peer_blas), not OpenBLAS: see update-alternatives --display libblas.so.3-$(uname -m)-linux-gnu" >&2
      exit 1
    fi
  fi
elif ! $py -c 'import yaml' 2>/dev/null; then
  apt_install "Python's yaml module is missing" python3-yaml
fi

echo "building $bin..." >&2
make -s build BIN="$bin"
if [ -z "$(make -s print-tags)" ]; then
  echo "bench/search.sh: floodtune is built with the pure-Go BLAS here (OpenBLAS needs Debian's libopenblas-dev)" >&2
fi
mkdir -p "$out"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", b - a}'; }
runs=()
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT

# failed WHAT LOG: reports a failed step with the end of its log.
failed() {
  echo "bench/search.sh: $1 failed; the end of $2:" >&2
  tail -n 15 "$2" >&2
  exit 1
}

# write_run DIR VARIANT TOOL PRUNER T0 T1 TRIALS_FILE BEST_FILE SPEC_JSON:
# what report.py reads of one search (files relative to DIR).
write_run() {
  local d=$1
  printf '{"setting": "%s", "seed": %s, "variant": "%s", "tool": "%s", "pruner": "%s", "workers": %s, "start": %s, "end": %s, "wall": %s, "trials_file": "%s", "best_file": %s, "spec_file": "%s"}\n' \
    "$setting" "$seed" "$2" "$3" "$4" "$workers" "$5" "$6" "$(elapsed "$5" "$6")" "$7" "$8" "$9" >"$d/run.json"
  runs+=("$d/run.json")
}

run_floodtune() { # VARIANT
  local v=$1 d=$sdir/$1 t0 t1
  local -a frags
  read -r -a frags <<<"$(fragments "$v")"
  rm -rf "$d" && mkdir -p "$d"
  $py "$dir/spec.py" --out "$d/spec.yaml" --trials "$trials" ${epochs:+--epochs "$epochs"} --seed "$seed" \
    "$dir/settings/$setting.yaml" "${frags[@]}"
  echo "[$setting, seed $seed] $v: $trials trials, $workers workers..." >&2
  t0=$(now)
  "$bin" study create search --spec "$d/spec.yaml" --storage "sqlite:$d/study.db" >>"$d/log" 2>&1 ||
    failed "$v: floodtune study create --spec $d/spec.yaml" "$d/log"
  "$bin" study optimize search --workers "$workers" --metrics-addr '' --storage "sqlite:$d/study.db" >>"$d/log" 2>&1 ||
    failed "$v: floodtune study optimize" "$d/log"
  t1=$(now)
  "$bin" study trials search --format json --storage "sqlite:$d/study.db" >"$d/trials.json"
  if ! "$bin" study best search --format json --storage "sqlite:$d/study.db" >"$d/best.json" 2>>"$d/log"; then
    echo null >"$d/best.json" # no complete trial
  fi
  write_run "$d" "$v" floodtune none "$t0" "$t1" trials.json '"best.json"' spec.json
  echo "[$setting, seed $seed] $v: $(elapsed "$t0" "$t1") s" >&2
}

run_optuna() { # VARIANT
  local v=$1 d=$sdir/$1 pruner t0 t1 i p fail=0
  pruner=$(pruner_of "$v")
  local url=sqlite:///$PWD/$d/optuna.db
  rm -rf "$d" && mkdir -p "$d"
  echo "[$setting, seed $seed] $v: $trials trials, $workers processes..." >&2
  t0=$(now)
  $py bench/peer/optuna_torch.py create --spec "$sdir/spec.yaml" --storage "$url" --study search --pruner "$pruner" >>"$d/log" 2>&1 ||
    failed "$v: optuna_torch.py create" "$d/log"
  pids=()
  for ((i = 0; i < workers; i++)); do
    $py bench/peer/optuna_torch.py work --spec "$sdir/spec.yaml" --storage "$url" --study search --pruner "$pruner" \
      --data "$sdir/data" --worker "$i" >>"$d/log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail=1; done
  pids=()
  t1=$(now)
  [ $fail = 0 ] || failed "$v: an Optuna worker" "$d/log"
  $py bench/peer/optuna_torch.py summary --storage "$url" --study search >"$d/summary.json"
  write_run "$d" "$v" optuna "$pruner" "$t0" "$t1" summary.json null ../spec.json
  echo "[$setting, seed $seed] $v: $(elapsed "$t0" "$t1") s" >&2
}

for setting in "${setting_list[@]}"; do
  for seed in "${seed_list[@]}"; do
    sdir=$out/$setting/seed$seed
    mkdir -p "$sdir"
    # The generic spec: floodtune-current's, and the peer's.
    $py "$dir/spec.py" --out "$sdir/spec.yaml" --trials "$trials" ${epochs:+--epochs "$epochs"} --seed "$seed" "$dir/settings/$setting.yaml"
    if [ $peers = 1 ]; then
      echo "[$setting, seed $seed] exporting the data to $sdir/data..." >&2
      "$bin" dataset export --spec "$sdir/spec.yaml" --out "$sdir/data" >"$sdir/export.log" 2>&1 ||
        failed "floodtune dataset export --spec $sdir/spec.yaml" "$sdir/export.log"
    fi
    for v in "${order[@]}"; do
      if [ -n "$(pruner_of "$v")" ]; then run_optuna "$v"; else run_floodtune "$v"; fi
    done
  done
done

{
  echo "# Time to target: floodtune against Optuna + PyTorch"
  echo
  echo "Settings: ${setting_list[*]}; seeds: ${seed_list[*]}; $trials trials a search${epochs:+, $epochs epochs a trial}; $workers workers; SQLite; the searches one after another."
  echo
  if [ $peers = 1 ]; then
    echo "$("$bin" version | paste -sd ';' | sed 's/;/, /g'); $($py -c 'import torch, optuna; print(f"PyTorch {torch.__version__}, Optuna {optuna.__version__}")') (Debian) with $(peer_blas); 1 BLAS thread per worker"
  else
    echo "$("$bin" version | paste -sd ';' | sed 's/;/, /g'); 1 BLAS thread per worker"
  fi
  echo
  echo "Machine: $(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo
  $py "$dir/report.py" "${runs[@]}"
} | tee "$out/report.md"
