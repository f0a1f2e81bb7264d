// Package search is floodtune's hub: study specs and their search spaces,
// samplers and pruners, the ask/tell core, the worker pool, leases and
// seeds. Go programs (AutoML pipelines) embed it to search the flood level
// of their own models, together with anything else they tune.
//
// # Studies
//
// A study lives in a storage (package storage: SQLite for one machine,
// PostgreSQL for many) and is described by a Spec, read from YAML or JSON
// with ParseSpec or built in Go. Create stores it and returns a *Study
// handle; Load returns a handle on a study that exists; LoadOrCreate does
// whichever applies, and refuses a study of that name made from another
// spec (ErrSpecMismatch), so that a pipeline run again resumes its study. Any number of
// handles, in any number of processes on any number of machines, may work
// on one study at once: the storage gives each trial to one worker, keeps
// trial numbers gap-free and never lets the study exceed its budget.
//
//	st, err := storage.Open(ctx, "postgres://floodtune@db/floodtune")
//	spec, err := search.ParseSpec(yamlBytes) // every problem at once; errors.Is(err, search.ErrBadSpec)
//	study, err := search.Create(ctx, st, "noise20", spec)
//
// # Who trains the trials
//
// With the built-in trainer (the default), a spec names a dataset
// (dataset:), fixes the model (an MLP, or model.type: cnn) and its
// training (model:, training:) and searches options floodtune knows
// (space: flood_level, flood, lr, hidden, conv, ...);
// Study.Optimize trains every trial itself.
//
// With trainer: external the program trains, and the spec names options of
// the program's choosing; no dataset is needed:
//
//	trainer: external
//	search: {sampler: tpe, trials: 40, seed: 1, objective: val_acc}
//	space:
//	  flood_level: {type: float, low: 0, high: 1.5}
//	  dropout: {type: float, low: 0, high: 0.5}
//	  width: {type: int, low: 64, high: 512, step: 64}
//	  activation: {type: categorical, choices: [relu, gelu]}
//
// flood_level and flood keep their meaning in every study: Trial.FloodLevel
// and Trial.FloodMethod give the trial's, and flood.Apply floods a Gorgonia
// loss with them, so that a pipeline's own model is flooded and searched
// like the built-in MLP. search.direction (maximize or minimize) says which
// way the objective goes when it is not val_acc or val_loss. A program may
// also suggest parameters as it runs (define-by-run), with
// Trial.SuggestFloat, SuggestInt and SuggestCategorical: the first call in
// a trial samples and records the value, a retry of the trial gets the
// same value back.
//
// # Running trials: Optimize, or Ask and Tell
//
// Study.Optimize runs trials with a pool of workers until the study's
// budget is spent, or the call's own limits (Options.MaxTrials,
// Options.Timeout) are reached, calling Options.Objective for each. A
// trial whose objective fails is recorded as failed with its reason and
// the workers go on, unless Options.FailFast stops the call there:
//
//	err := study.Optimize(ctx, search.Options{Workers: 2, MaxTrials: 10, Objective: func(ctx context.Context, t *search.Trial) (float64, error) {
//		for epoch := 1; epoch <= 20; epoch++ {
//			acc := trainOneEpoch(t.FloodLevel(), t.Params["dropout"].(float64))
//			if err := t.Report(ctx, epoch, acc); err != nil {
//				return acc, err // search.ErrPruned: the pruner stopped it
//			}
//		}
//		return acc, nil
//	}})
//
// The pool is built on Study.Ask, which a program may call itself when it
// drives training its own way: Ask leases a trial (an enqueued or retried
// one first, else a new one with sampled parameters; ErrBudgetExhausted
// once the budget is spent), a goroutine renews the lease, and the trial
// ends with Tell (its value), Prune, Fail or Release (given back, to run
// again). A trial whose worker stops renewing its lease is failed and
// retried with the same parameters by whoever reaps it (Ask, or any
// Optimize), and the stopped worker's late writes are refused with
// ErrLeaseLost.
//
//	for {
//		t, err := study.Ask(ctx, search.AskOptions{})
//		if errors.Is(err, search.ErrBudgetExhausted) {
//			break
//		}
//		...
//		err = t.Tell(ctx, value)
//	}
//
// # Reading results
//
// Study.Trials, Trial, Best and BestParams read the study back with
// parameters decoded (TrialRecord): a float as float64, an int as int, a
// categorical option as its choice, suggested parameters included.
// TrialRecord.Attempt and RetryOf tell a retry (the same parameters run
// again after its worker stopped) from a new proposal.
//
// # Proposals and what the study seed reproduces
//
// Each trial's parameters are drawn from a stream of its own, seeded by the
// study's seed and the trial's number (SamplerSeed), and each trial trains
// with its own seed (TrialSeed): no two trials share a stream, whichever
// worker, process, machine or run proposes them, so a fleet never repeats
// a proposal and a resumed study goes on with new ones. The study seed
// reproduces:
//
//   - every trial's training seed, so that floodtune trial rerun repeats a
//     trial bit for bit;
//   - with the random sampler, every sampled trial's parameters, whatever
//     the number of workers, processes or runs;
//   - with TPE, the parameters of the start-up trials (the first ten that
//     see too few finished trials to model), and with one worker, every
//     trial's; with several, a trial's proposal depends on which trials had
//     finished when it was asked for, which timing decides;
//   - with CMA-ES, with one worker in one process, every trial's; each
//     Study handle keeps one CMA-ES state, seeded by its first trial's
//     number, so several processes search with several states.
//
// # Errors
//
// ErrBadSpec (every spec problem), ErrBadOptions (inconsistent options),
// ErrUnbounded (a study without a budget and a call without a limit),
// ErrSpecMismatch, ErrProposalFailed (an Ask whose trial could not be
// given parameters, and was failed),
// ErrOutsideSpace (a *SpaceError: a value given for a searched option that
// is not in its space), ErrUnavailable (a storage that cannot be reached;
// its message never holds a password), ErrBudgetExhausted, ErrLeaseLost,
// ErrTrialFinished and ErrNotFound are compared with errors.Is. A cancelled
// ctx makes Optimize give its running trials back and return ctx.Err().
//
// # The process
//
// Library code changes no process-wide setting unless asked:
// Options.ReserveThreads puts OpenBLAS on one thread and raises GOMAXPROCS
// by the workers while Optimize runs, which the floodtune command sets and
// an embedding program chooses for itself (see its documentation).
package search
