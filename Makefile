# floodtune: build, test, benchmark and demo.
#
# OpenBLAS is used when its library links (Debian: libopenblas-dev), else the
# pure-Go BLAS; `make print-tags` shows the choice, OPENBLAS=0 forces pure Go.

GO       ?= go
CC       ?= cc
BIN      ?= bin/floodtune
OPENBLAS ?= $(shell printf 'void openblas_set_num_threads(int);int main(void){openblas_set_num_threads(1);return 0;}' | $(CC) -x c - -lopenblas -o /dev/null 2>/dev/null && echo 1 || echo 0)
TAGS     := $(if $(filter 1,$(OPENBLAS)),openblas,)
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -X main.version=$(VERSION)

.PHONY: all build test lint test-python test-deploy test-bench test-pipeline test-reliability fuzz vet bench bench-step bench-go bench-storage bench-overhead bench-peer bench-search bench-service bench-load bench-tpecost demo demo-run results results-sweeps print-tags clean

all: build

build:
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/floodtune

print-tags:
	@echo $(TAGS)

# go vet once for each set of files a build can have. Only objective/ and
# internal/openblas have build-tagged files: the first run takes the build's
# tags over everything (with OpenBLAS: blas_openblas.go, internal/openblas,
# kernels_amd64.go); the second takes objective/ alone with the files the
# first leaves out (blas_gonum.go, the pure-Go BLAS, and kernels_other.go,
# the kernels of other CPUs). Vetting all of ./... without the tag again
# would vet the same files twice. The go test runs of `make test` pass
# -vet=off: this target, which they depend on, has vetted what they build.
vet:
	$(GO) vet -tags '$(TAGS)' ./...
	$(GO) vet -tags purego ./objective/
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# The tests, with the BLAS the build uses and, when that is OpenBLAS, once
# more with the pure-Go BLAS that every machine has. Storage tests use the
# PostgreSQL named by FLOODTUNE_TEST_DATABASE_URL, or start a throw-away
# server (scripts/ensure-postgres.sh installs Debian's postgresql if needed).
# The packages with goroutines of their own (worker pool, leases, caches,
# servers) run their tests once more under the race detector (about 2
# minutes on 2 cores; the storage tests that repeat work only for numbers
# repeat less under it: storage/race_on_test.go).
RACE_PKGS := ./storage/ ./search/ ./metrics/ ./api/ ./client/
test: vet lint
	scripts/ensure-postgres.sh
	scripts/ensure-prometheus.sh
	scripts/ensure-python-torch.sh
	scripts/ensure-pgbouncer.sh
	$(GO) test -vet=off -tags '$(TAGS)' -count=1 ./...
	$(GO) test -vet=off -race -tags '$(TAGS)' -count=1 $(RACE_PKGS)
	$(MAKE) test-python
	$(MAKE) test-deploy
	$(MAKE) test-bench
ifeq ($(TAGS),openblas)
	$(GO) test -vet=off -count=1 ./flood/ ./objective/ ./cmd/...
endif
	$(MAKE) test-pipeline
	$(MAKE) fuzz FUZZTIME=20000x

# Static checks of this module and of the nested ones: go.mod and go.sum
# tidy (go mod tidy -diff prints what tidy would change and fails), and
# staticcheck with its default checks over the same sets of files as vet
# (a staticcheck.conf says which check is off in its directory, and why; a
# //lint:ignore says it for one line).
STATICCHECK    ?= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2
NESTED_MODULES  = examples/pipeline bench $(DEPLOY_MODULES)
lint:
	$(GO) mod tidy -diff
	$(STATICCHECK) -tags '$(TAGS)' ./...
	$(STATICCHECK) -tags purego ./objective/
	for m in $(NESTED_MODULES); do (cd $$m && $(GO) mod tidy -diff && $(STATICCHECK) ./...) || exit 1; done

# The Python client (clients/python), standard library only, against a fake
# server; the real service with a PyTorch worker is tested in reliability/.
PYTHON ?= /usr/bin/python3
test-python:
	$(PYTHON) -m unittest discover -s clients/python
	$(PYTHON) bench/reference/compare.py --check

# The deployment files checked by modules of their own (their heavy
# dependencies stay out of floodtune's): the Grafana dashboards strictly
# against Grafana's published schema (grafana-foundation-sdk), the
# Kubernetes base rendered with kustomize and decoded strictly into the
# Kubernetes API types, its command lines checked against floodtune's.
DEPLOY_MODULES := deploy/grafana/schematest deploy/kubernetes/kubetest
test-deploy:
	for m in $(DEPLOY_MODULES); do (cd $$m && $(GO) vet ./... && $(GO) test -count=1 ./...) || exit 1; done

# bench/: a module of its own, so that the peers' dependencies (gorm for
# Goptuna's rdb.v2) stay out of floodtune's; its storage benchmark's tests.
test-bench:
	cd bench && $(GO) vet -tags '$(TAGS)' ./... && $(GO) test -count=1 ./...

# examples/pipeline: a module of its own that embeds floodtune as an AutoML
# pipeline does (its own model and parameters, ask/tell, Optimize).
test-pipeline:
	cd examples/pipeline && $(GO) vet ./... && $(GO) test -count=1 ./... && $(GO) run . >/dev/null

# The parsers of untrusted input, fuzzed for a bounded time (the corpus
# seeds are in the tests).
# make test fuzzes a number of inputs (20000x), not for a time: Go 1.26's
# fuzzing coordinator can end a timed run with a spurious "context deadline
# exceeded" and no failing input when its workers are slow to stop
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 1m
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseSpec$$' -fuzztime $(FUZZTIME) ./search/
	$(GO) test -run '^$$' -fuzz '^FuzzRedact$$' -fuzztime $(FUZZTIME) ./storage/
	$(GO) test -run '^$$' -fuzz '^FuzzOpenURL$$' -fuzztime $(FUZZTIME) ./storage/
	$(GO) test -run '^$$' -fuzz '^FuzzConnectionStringNeverLeaksAPassword$$' -fuzztime $(FUZZTIME) ./storage/

# Real floodtune processes killed, frozen, interrupted and raced against a
# real PostgreSQL (also part of make test).
test-reliability:
	scripts/ensure-postgres.sh
	$(GO) test -count=1 -v ./reliability/

# Benchmarks print figures; none of them passes or fails on a timing.
bench: bench-step bench-go bench-storage bench-overhead bench-service bench-peer bench-search results bench-load bench-tpecost

# 8, 64 and 256 workers on one study, directly and through PgBouncer, then
# what a trial costs the database and the capacity model (docs/scaling.md).
bench-load:
	bench/load.sh $(ARGS)

# One TPE suggestion at 1,000, 10,000 and 50,000 trials: storage time, cold
# and warm, apart from the sampler's (docs/scaling.md).
bench-tpecost:
	bench/tpecost.sh $(ARGS)

bench-step:
	bench/step.sh

# floodtune's storage against Goptuna's rdb.v2 on the same PostgreSQL.
bench-storage:
	bench/storage.sh

# Search overhead per trial (all but training) of floodtune (SQLite, and
# PostgreSQL when there is one) and of Optuna on SQLite, at 100 and 1,000
# trials, and its share of a trial that trains TRIAL_SECONDS (default 20).
bench-overhead:
	bench/overhead.sh

# Ask/tell throughput of the HTTP API (api.Server and client.Client on
# loopback) against the Go path (search.Study) on the same PostgreSQL, with
# 8, 32 and 128 clients and 1,000 trials, the random sampler, 3 rounds:
# trials/s, p50 and p99 of ask, tell and report, the ratio, CPU per trial
# (bench/service.sh; flags pass through, e.g. ARGS='-sampler tpe -clients
# 32'). PostgreSQL: FLOODTUNE_BENCH_DATABASE_URL, else a throw-away server.
# About 1.5 minutes on 2 cores.
bench-service:
	bench/service.sh $(ARGS)

bench-go:
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchmem ./objective/

# One study (MNIST, 20% label noise, TPE over flood level and lr) run by
# floodtune and by Optuna + PyTorch on 2 workers, then floodtune on 1: wall
# time, trials per hour, best validation accuracy, ratios (bench/peer.sh;
# TRIALS, EPOCHS, TRAIN_SIZE, VAL_SIZE, SCALING_PEER=1). Installs Debian's
# python3-torch and python3-optuna when run as root.
bench-peer:
	bench/peer.sh

# Time to target of whole searches (MNIST with 20% and 40% label noise, two
# Gaussians; 12 trials, 2 workers, 3 seeds): floodtune as a generic tool,
# flood-aware, and flood-aware with the noise prior, against Optuna +
# PyTorch with TPE, without and with Hyperband pruning, one search at a
# time (bench/search.sh; SETTINGS, SEEDS, TRIALS, EPOCHS, VARIANTS,
# PEER_PRUNERS). About an hour on 2 cores with OpenBLAS; it needs the
# machine to itself.
bench-search:
	bench/search.sh

# The demo study: a flood-level search on MNIST with 20% label noise
# (examples/mnist-noise20.yaml, 12 trials of 20 epochs on 10,000 images),
# one worker per core; it prints the best flood level against plain
# training. About two minutes on 2 cores with OpenBLAS.
DEMO_DB ?= out/demo.db
# The demo makes sure of OpenBLAS first (installed as root, else a word on
# what the pure-Go BLAS will cost), then builds with what links.
demo:
	scripts/ensure-openblas.sh
	$(MAKE) demo-run

demo-run: build
	@mkdir -p $(dir $(DEMO_DB)) && rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	$(BIN) study create mnist-noise20 --spec examples/mnist-noise20.yaml --storage sqlite:$(DEMO_DB)
	$(BIN) study optimize mnist-noise20 --storage sqlite:$(DEMO_DB)

# The tables of docs/results.md: floodtune studies of the paper's synthetic
# settings and of MNIST with label noise (flooding and iFlood, 3 seeds), the
# test loss across flood levels, and the flood-level prior (about an hour
# on 2 cores with OpenBLAS), then the convolutional network on MNIST with
# label noise (flooding, 3 seeds; about as long again). Studies already
# finished in out/evidence are read, not run again. The training sweeps
# against the PyTorch reference in bench/reference/ (bench/results.sh):
# make results-sweeps.
results:
	$(GO) -C bench build -tags '$(TAGS)' -o ../bin/evidence ./evidence
	bin/evidence -storage sqlite:out/evidence/evidence.db
	bin/evidence -storage sqlite:out/evidence/evidence.db -parts science -settings mnist-cnn-noise20,mnist-cnn-noise40 -methods flood

results-sweeps: build
	bench/results.sh all

clean:
	rm -rf bin out
