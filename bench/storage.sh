#!/usr/bin/env bash
# Storage benchmarks: floodtune's PostgreSQL and SQLite stores against
# Goptuna's gorm-based rdb.v2 storage on the same PostgreSQL server, in the
# same run (see bench/storage/doc.go), then the figures as Markdown tables
# for docs/performance.md. Every benchmark runs 3 times (-count=3) and the
# tables show medians, which a machine busy with other work moves less than
# means. About 3 minutes on 2 cores.
#
# The PostgreSQL server is FLOODTUNE_TEST_DATABASE_URL's (a role that may
# create databases) or, when it is unset, a throw-away server that the test
# binary starts and removes (Debian's postgresql package; see
# scripts/ensure-postgres.sh). Nothing else needs setting up.
#
# Usage: bench/storage.sh [test binary flags...]
#   -asktell.trials=400     trials of one ask/tell run (a fresh study each run)
#   -asktell.workers=8      concurrent workers of the ask/tell runs
#   -study.sizes=1000,10000 study sizes for loading and TPE
#   -test.count=1           one run of each benchmark (about 1.5 minutes)
#   -test.bench=AskTell     only some of the benchmarks
#   -test.cpuprofile=...    and the other test flags
set -euo pipefail
cd "$(dirname "$0")/.."
changes=$(git status --porcelain -- storage migrations 2>/dev/null || true)
dirty=
if grep -qv -e '_test\.go$' -e '^$' <<<"$changes"; then
  dirty=" (storage/ or migrations/ with uncommitted changes)"
fi
echo "# floodtune $(git log -1 --format='%h %s' 2>/dev/null || echo '(no git)')$dirty; $(go version | cut -d' ' -f3-), $(nproc) CPUs"
go -C bench test -count=3 -timeout=30m -run '^$' -bench . -benchtime=1s ./storage/ "$@"
