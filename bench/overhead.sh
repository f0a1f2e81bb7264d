#!/usr/bin/env bash
# Search overhead per trial (everything but training) of floodtune and of
# Optuna, measured in the same run, as a share of a trial that trains for
# TRIAL_SECONDS: overhead / (overhead + TRIAL_SECONDS).
#
#   floodtune  bench/overhead: search.Optimize with an objective that trains
#              nothing, TPE with the constant liar, 2 workers, 10 intermediate
#              values and the built-in objective's attributes per trial; on
#              a new SQLite file, and on PostgreSQL when there is one
#   Optuna     bench/overhead/optuna_overhead.py: the same objective, TPE,
#              2 processes sharing a new SQLite file (Debian's python3-optuna)
#
# A trial's overhead is the time its worker took from finishing its previous
# trial to finishing this one; the table shows the mean over trials 90-109
# ("at 100 trials") and over the last 20 ("at TRIALS"). Each tool runs with
# its own defaults: floodtune's SQLite store uses WAL with synchronous=NORMAL,
# Optuna's (SQLAlchemy) SQLite the rollback journal with synchronous=FULL.
# The runs follow each other; other programs on the machine slow them all.
#
# PostgreSQL: FLOODTUNE_BENCH_DATABASE_URL (a role that may create a schema
# in its database), else a throw-away server started from the local server
# binaries (Debian's postgresql; scripts/ensure-postgres.sh installs it) with
# its default settings plus PG_OPTIONS (e.g. PG_OPTIONS='-c fsync=off'),
# else SQLite only.
#
# Usage: bench/overhead.sh
#   TRIALS=1000        trials per study (at least 110)
#   TRIAL_SECONDS=20   training time of a trial for the share; 20 s is the
#                      order of one MNIST trial of 10 epochs on 10,000 images
#                      (about 10 s with OpenBLAS on one core of the reference
#                      machine, several times more with the pure-Go BLAS)
#   PYTHON=/usr/bin/python3
# About 10 minutes at 1,000 trials on 2 busy cores, 8 of them Optuna's.
set -euo pipefail
cd "$(dirname "$0")/.."
trials=${TRIALS:-1000}
T=${TRIAL_SECONDS:-20}
python=${PYTHON:-/usr/bin/python3}
if ! [[ $trials =~ ^[0-9]+$ ]] || [ "$trials" -lt 110 ]; then
  echo "overhead.sh: TRIALS must be a number >= 110" >&2
  exit 2
fi
if ! [[ $T =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "overhead.sh: TRIAL_SECONDS must be a number of seconds" >&2
  exit 2
fi

work=$(mktemp -d /tmp/floodtune-overhead.XXXXXX)
. bench/lib/postgres.sh
trap 'stop_postgres; rm -rf "$work"' EXIT

if ! "$python" -c 'import optuna' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's python3-optuna for the comparison..." >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-optuna; } >/dev/null ||
      echo "could not install python3-optuna" >&2
  else
    echo "Optuna is missing: run 'sudo apt-get install python3-optuna' for the comparison" >&2
  fi
fi
have_optuna=0
"$python" -c 'import optuna' 2>/dev/null && have_optuna=1

pg_url=${FLOODTUNE_BENCH_DATABASE_URL:-}
pg_desc="PostgreSQL of \$FLOODTUNE_BENCH_DATABASE_URL"
if [ -z "$pg_url" ]; then
  if start_postgres overhead; then
    pg_desc="throw-away PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}'), default settings${PG_OPTIONS:+ and $PG_OPTIONS}"
  else
    pg_url=""
    echo "no PostgreSQL (set FLOODTUNE_BENCH_DATABASE_URL or install postgresql, e.g. scripts/ensure-postgres.sh): SQLite only" >&2
  fi
fi

optuna_version=none
[ $have_optuna = 1 ] && optuna_version=$("$python" -c 'import optuna; print(optuna.__version__)')
echo "# floodtune $(git log -1 --format='%h %s' 2>/dev/null || echo '(no git)'); $(go version | cut -d' ' -f3-), $(nproc) CPUs; Optuna $optuna_version ($("$python" --version 2>&1))"
go -C bench build -o "$work/overhead" ./overhead

results=()
run() { # label, command...
  local label=$1
  shift
  echo
  echo "## $label (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
  "$@" | tee "$work/out"
  results+=("$(grep '^RESULT' "$work/out")")
}
run "floodtune, SQLite" "$work/overhead" -storage "sqlite:$work/floodtune.db" -trials "$trials"
if [ -n "$pg_url" ]; then
  run "floodtune, $pg_desc" "$work/overhead" -storage "$pg_url" -trials "$trials"
fi
if [ $have_optuna = 1 ]; then
  run "Optuna, SQLite" "$python" bench/overhead/optuna_overhead.py --storage "sqlite:///$work/optuna.db" --trials "$trials"
fi

echo
echo "## Search overhead per trial (2 workers, TPE; mean ms a trial over trials 90-109 and $((trials - 20))-$((trials - 1)))"
echo
echo "Share: overhead / (overhead + T), for a trial that trains for T = $T s."
echo
printf '%s\n' "${results[@]}" | awk -F'\t' -v T="$T" -v n="$trials" '
  function share(ms) { return sprintf("%.2f%%", 100 * ms / (ms + 1000 * T)) }
  { tool[NR] = $2; st[NR] = $3; a[NR] = $4; b[NR] = $5
    if ($2 == "optuna") { oa = $4; ob = $5; have = 1 } }
  END {
    printf "| tool | storage | ms/trial at 100 | ms/trial at %d | share of a %s s trial at 100 | at %d | Optuna (SQLite) / this, at 100 | at %d |\n", n, T, n, n
    print "|---|---|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= NR; i++) {
      r1 = "–"; r2 = "–"
      if (have && tool[i] != "optuna") { r1 = sprintf("%.1f×", oa / a[i]); r2 = sprintf("%.1f×", ob / b[i]) }
      printf "| %s | %s | %.1f | %.1f | %s | %s | %s | %s |\n", (tool[i] == "optuna" ? "Optuna" : tool[i]), (st[i] == "sqlite" ? "SQLite" : "PostgreSQL"), a[i], b[i], share(a[i]), share(b[i]), r1, r2
    }
  }'
