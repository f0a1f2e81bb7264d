package reliability

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

// proposalSpec is a study of trials that take about a third of a second
// (long enough that the processes started at once share the study, and
// that a SIGTERM sent while a trial runs finds it still running), on two
// searched options: a repeated proposal is a repeated pair of floats, which
// independent draws never give. It takes the sampler and the budget.
const proposalSpec = `
dataset: {name: gauss2d, train_size: 2000, val_size: 200, test_size: 200, label_noise: 0.1}
model: {hidden: [128, 128]}
training: {optimizer: adam, batch_size: 50, epochs: 20}
search: {sampler: %s, trials: %d, seed: 7}
space:
  flood_level: {type: float, low: 0.0, high: 0.6}
  lr: {type: float, low: 0.001, high: 0.1, log: true}
`

// proposalBudget is the budget of the studies here: the baseline and 14
// proposals.
const proposalBudget = 15

// samplers are the samplers whose proposals must never repeat: the random
// sampler, and TPE, which draws at random until it has 10 trials to learn
// from.
var samplers = []struct{ name, sampler string }{
	{"with the random sampler", "random"},
	{"with TPE", "tpe"},
}

// newProposalEnv is an env whose study "s" is proposalSpec with sampler.
func newProposalEnv(t *testing.T, sampler string) *env {
	t.Helper()
	return newEnvOf(t, pgtest.Schema(t), fmt.Sprintf(proposalSpec, sampler, proposalBudget))
}

// sampled reports whether the sampler proposed t's parameters: t was not
// enqueued (as the baseline and the retries of trials that had parameters
// are, with fixed_params) and it has parameters (a trial given back before
// it had any has none, and its retry is sampled afresh).
func sampled(t *storage.Trial) bool {
	_, fixed := t.SystemAttrs[storage.FixedParamsAttr]
	return !fixed && t.SystemAttrs[search.BaselineAttr] != "true" && len(t.Params) > 0
}

// paramKey is a trial's parameters as stored (their internal values), in
// one string: two trials with the same key ran the same point.
func paramKey(t *storage.Trial) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(t.Params)) {
		fmt.Fprintf(&b, "%s=%v ", name, t.Params[name].Value)
	}
	return strings.TrimSpace(b.String())
}

// checkProposals checks what every study here must leave, besides
// checkStudy's: every trial that counts is complete, no two sampled trials
// have the same parameters, and each retry keeps the parameters of the
// trial it retries (a retry is not a repeat).
func (e *env) checkProposals() []*storage.Trial {
	e.t.Helper()
	e.checkStudy(proposalBudget)
	trials := e.trials()
	byID := make(map[int64]*storage.Trial, len(trials))
	for _, tr := range trials {
		byID[tr.ID] = tr
	}
	first := map[string]int{}
	repeated := false
	var lines []string
	for _, tr := range trials {
		if tr.RetriedBy == 0 && tr.State != storage.Complete {
			e.t.Errorf("trial %d is %s (%s), want complete", tr.Number, tr.State, tr.SystemAttrs[storage.FailReasonAttr])
		}
		kind := "sampled"
		switch {
		case tr.SystemAttrs[search.BaselineAttr] == "true":
			kind = "baseline"
		case tr.RetryOf != 0:
			kind = fmt.Sprintf("retry of %d", byID[tr.RetryOf].Number)
		case !sampled(tr):
			kind = "enqueued"
		}
		lines = append(lines, fmt.Sprintf("  trial %2d  %-8s  %-12s  %-20s  %s", tr.Number, tr.State, kind, tr.Worker, paramKey(tr)))
		if tr.RetryOf != 0 {
			of := byID[tr.RetryOf]
			for name, p := range of.Params {
				if got, ok := tr.Params[name]; !ok || got.Value != p.Value {
					e.t.Errorf("trial %d retries trial %d but has %s=%v, not its %v: a retry must run the same point", tr.Number, of.Number, name, got.Value, p.Value)
				}
			}
		}
		if !sampled(tr) {
			continue
		}
		key := paramKey(tr)
		if n, ok := first[key]; ok {
			e.t.Errorf("trials %d and %d were both proposed with %s", n, tr.Number, key)
			repeated = true
		} else {
			first[key] = tr.Number
		}
	}
	if repeated || e.t.Failed() {
		e.t.Logf("the study's trials (parameters as stored):\n%s", strings.Join(lines, "\n"))
	}
	return trials
}

// workerPrefix is the process part of a worker's name, PREFIX/slot.
func workerPrefix(worker string) string {
	if i := strings.LastIndex(worker, "/"); i >= 0 {
		return worker[:i]
	}
	return worker
}

func TestThreeProcessesStartedAtOnceNeverRepeatAProposal(t *testing.T) {
	t.Parallel()
	for _, tc := range samplers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newProposalEnv(t, tc.sampler)
			var ws []*worker
			for i := 0; i < 3; i++ {
				ws = append(ws, e.start(fmt.Sprintf("process %d", i)))
			}
			for _, w := range ws {
				if err := w.wait(t, 3*time.Minute); err != nil {
					t.Errorf("%s: %v (want exit status 0)", w.name, err)
				}
			}
			trials := e.checkProposals()
			// The test means something only if the processes shared the
			// study: one that ran every trial alone could not repeat
			// another's proposals.
			perProcess := map[string]int{}
			for _, tr := range trials {
				if tr.Worker != "" {
					perProcess[workerPrefix(tr.Worker)]++
				}
			}
			t.Logf("trials per process: %v", perProcess)
			if len(perProcess) < 2 {
				t.Errorf("the trials ran in %d process(es), want at least 2 of the 3: %v", len(perProcess), perProcess)
			}
		})
	}
}

// stopWhen starts the first run of e's study, waits until ready holds of
// the study's trials and one of them is running with its parameters, sends
// SIGTERM and waits for the run to exit with status 0. It returns the
// trial that was running.
//
// On a loaded machine the test can see a trial running and signal only
// after the trial has finished; so the run is frozen (SIGSTOP) first, the
// trial is seen still running while the run cannot go on, and only then is
// the run sent SIGTERM and let go on (SIGCONT).
func (e *env) stopWhen(what string, ready func([]*storage.Trial) bool) *storage.Trial {
	t := e.t
	t.Helper()
	first := e.start("the first run")
	running := func(trials []*storage.Trial) *storage.Trial {
		for _, tr := range trials {
			if tr.State == storage.Running && len(tr.Params) > 0 {
				return tr
			}
		}
		return nil
	}
	signal := func(sig syscall.Signal) {
		t.Helper()
		if err := first.cmd.Process.Signal(sig); err != nil {
			t.Fatalf("send %v to the first run: %v", sig, err)
		}
	}
	var victim *storage.Trial
	until(t, 2*time.Minute, what, func() bool {
		trials := e.trials()
		counted := 0
		for _, tr := range trials {
			if tr.RetriedBy == 0 && tr.State.Final() {
				counted++
			}
		}
		if counted >= proposalBudget-1 {
			t.Fatalf("the first run finished %d of %d trials before it could be stopped %s", counted, proposalBudget, what)
		}
		if running(trials) == nil || !ready(trials) {
			return false
		}
		signal(syscall.SIGSTOP)
		trials = e.trials()
		if victim = running(trials); victim != nil && ready(trials) {
			return true
		}
		signal(syscall.SIGCONT)
		return false
	})
	signal(syscall.SIGTERM)
	signal(syscall.SIGCONT)
	if err := first.wait(t, time.Minute); err != nil {
		t.Fatalf("the first run after SIGTERM: %v (want exit status 0)", err)
	}
	for _, tr := range e.trials() {
		if tr.State == storage.Running {
			t.Errorf("trial %d is still running after the first run stopped", tr.Number)
		}
	}
	return victim
}

// finish runs the study again to its end and checks it.
func (e *env) finish(victim *storage.Trial) {
	t := e.t
	t.Helper()
	second := e.start("the second run")
	if err := second.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("the second run: %v (want exit status 0)", err)
	}
	e.checkProposals()
	stopped, err := e.st.Trial(context.Background(), victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case stopped.State == storage.Fail && stopped.RetriedBy != 0:
		retry, err := e.st.Trial(context.Background(), stopped.RetriedBy)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("trial %d (%s) was given back and ran again as trial %d (%s)", stopped.Number, paramKey(stopped), retry.Number, paramKey(retry))
	case stopped.State == storage.Complete:
		// The trial was at its very end when the run went on: it
		// finished before the signal stopped it, and nothing was given
		// back. Rare; the proposals must still not repeat.
		t.Logf("trial %d completed before the signal arrived: no trial was given back", stopped.Number)
	default:
		t.Errorf("trial %d, running when the first run was stopped, is %s and retried by %d: want given back and retried", stopped.Number, stopped.State, stopped.RetriedBy)
	}
}

func complete(trials []*storage.Trial) int {
	n := 0
	for _, tr := range trials {
		if tr.State == storage.Complete {
			n++
		}
	}
	return n
}

func TestAResumedStudyNeverRepeatsTheProposalsOfTheRunBefore(t *testing.T) {
	t.Parallel()
	for _, tc := range samplers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newProposalEnv(t, tc.sampler)
			victim := e.stopWhen("after 4 complete trials, during the next", func(trials []*storage.Trial) bool {
				return complete(trials) >= 4
			})
			e.finish(victim)
		})
	}
}

func TestARunAfterARunLimitedByMaxTrialsNeverRepeatsItsProposals(t *testing.T) {
	t.Parallel()
	const limit = 5
	for _, tc := range samplers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newProposalEnv(t, tc.sampler)
			first := e.start("the first run", "--max-trials", fmt.Sprint(limit))
			if err := first.wait(t, 3*time.Minute); err != nil {
				t.Fatalf("the first run: %v (want exit status 0)", err)
			}
			trials := e.trials()
			if len(trials) != limit || complete(trials) != limit {
				t.Fatalf("after the first run (--max-trials %d): %d trials, %d complete; want %d, all complete", limit, len(trials), complete(trials), limit)
			}
			firstRun := workerPrefix(trials[0].Worker)
			second := e.start("the second run")
			if err := second.wait(t, 3*time.Minute); err != nil {
				t.Fatalf("the second run: %v (want exit status 0)", err)
			}
			for _, tr := range e.checkProposals()[limit:] {
				if p := workerPrefix(tr.Worker); p == firstRun {
					t.Errorf("trial %d of the second run ran under the first run's name %q", tr.Number, p)
				}
			}
		})
	}
}
