#!/usr/bin/env bash
# One TPE suggestion as the study grows (bench/tpecost): 1,000, 10,000 and
# 50,000 complete trials in one study, the storage time of a suggestion
# (reading the study's trials) apart from the sampler's, cold (the first
# suggestion of a fresh process) and warm (the following ones), and Ask end
# to end; then a CPU profile of the warm Asks at the largest size (top 25
# by cumulative time). The goal: one suggestion at 50,000 trials under 50 ms
# of storage time. Timings never fail it.
#
# PostgreSQL: FLOODTUNE_BENCH_DATABASE_URL (a role that may create
# databases), else a throw-away server from the local server binaries
# (scripts/ensure-postgres.sh installs them when run as root) with its
# default settings plus PG_OPTIONS, removed at the end.
#
# Usage: bench/tpecost.sh [flags of bench/tpecost...]
#   -sizes 1000,10000,50000   study sizes
#   -reps 5                   warm repetitions (medians)
#   -epochs 10 -attrs 11      what each stored trial holds
# About 3 minutes on 2 cores, most of it filling the study.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/floodtune-tpecost.XXXXXX)
. bench/lib/postgres.sh
trap 'stop_postgres; rm -rf "$work"' EXIT
bench_postgres tpecost || exit 1

echo "# floodtune $(git log -1 --format='%h %s' 2>/dev/null || echo '(no git)'); $(go version | cut -d' ' -f3-), $(nproc) CPUs; $pg_desc"
go -C bench build -o "$work/tpecost" ./tpecost
"$work/tpecost" -db "$pg_url" -cpuprofile "$work/ask.pprof" "$@"
echo
echo "CPU profile of the warm Asks at the largest size (this process; top 25 by cumulative time):"
echo
go tool pprof -top -cum -nodecount=25 "$work/tpecost" "$work/ask.pprof" 2>/dev/null | sed -n '1,35p' | sed 's/^/    /'
