package search

import (
	"math"
	"strconv"
	"strings"

	"github.com/floodtune/floodtune/storage"
)

// The attributes the search records on trials: the keys that search, the
// CLI, the plots and the HTTP service read. One home, so that a reader
// of one package finds what another writes.

// System attributes of a trial.
const (
	SeedAttr        = "seed"         // the trial's seed (model initialisation, batch order)
	SamplerSeedAttr = "sampler_seed" // the seed of the sampler that chose its parameters
	BaselineAttr    = "baseline"     // "true" on the plain-training trial enqueued first
	ReasonAttr      = storage.FailReasonAttr
	// EstimateAttr marks, with the kind of centre, the trial that Create
	// enqueues at the estimate of a centred flood-level range.
	EstimateAttr = "estimate"
)

// User attributes of the built-in trainer's trials: the run's last epoch
// (Result's figures), as numbers written with strconv.FormatFloat.
const (
	TestAccAttr        = "test_acc"
	TestLossAttr       = "test_loss"
	TrainLossAttr      = "train_loss" // unflooded, over the training split
	TrainAccAttr       = "train_acc"
	ValLossAttr        = "val_loss"
	ValAccAttr         = "val_acc"
	AscentFractionAttr = "ascent_fraction" // the share of steps that ascended
	EpochsAttr         = "epochs"          // the epochs the run counts
	SecondsAttr        = "seconds"         // the run's wall time
)

// User attributes of the built-in trainer's best validation epoch.
const (
	BestEpochAttr    = "best_epoch"    // the epoch of the best validation value
	BestValAccAttr   = "best_val_acc"  // its validation accuracy
	BestValLossAttr  = "best_val_loss" // its validation loss
	BestTestAccAttr  = "best_test_acc" // the test accuracy at it, where evaluated
	BestTestLossAttr = "best_test_loss"
)

// User attributes of the built-in objective's trials that hold per-epoch
// curves (FormatCurve, ParseCurve): the training loss (unflooded, the
// mean over the epoch's minibatches) and the validation loss always, the
// test loss and accuracy with training.test_curve.
const (
	TrainLossCurveAttr = "train_loss_curve"
	ValLossCurveAttr   = "val_loss_curve"
	TestLossCurveAttr  = "test_loss_curve"
	TestAccCurveAttr   = "test_acc_curve"
	// ElapsedCurveAttr holds, per epoch, the seconds from the start of the
	// trial's run to the report of that epoch's validation value (a
	// FormatCurve array; epochs started from a checkpoint are reported
	// when it has been read).
	ElapsedCurveAttr = "elapsed_curve"
)

// User attributes of how a run trained.
const (
	// TrainedEpochsAttr counts the epochs the trial trained itself: its
	// run's epochs less those it started from.
	TrainedEpochsAttr = "trained_epochs"
	// StoppedAtEpochAttr is the epoch after which early stopping ended
	// the run.
	StoppedAtEpochAttr = "stopped_at_epoch"
	// ForkedFromEpochAttr and ForkedFromTrialAttr mark a trial that
	// started from a checkpoint: the epochs it did not train, and the
	// trial whose run they were.
	ForkedFromEpochAttr = "forked_from_epoch"
	ForkedFromTrialAttr = "forked_from_trial"
)

// AttrFloat reads the user attribute key of t as a number; false when t is
// nil or the attribute is missing or not a number.
func AttrFloat(t *storage.Trial, key string) (float64, bool) {
	if t == nil {
		return math.NaN(), false
	}
	s, ok := t.UserAttrs[key]
	if !ok {
		return math.NaN(), false
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return math.NaN(), false
	}
	return v, true
}
