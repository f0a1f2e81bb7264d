package search

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"

	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/storage"
)

// Forking. A flooded run is plain training until its loss first drops
// below its level (objective.ForkEpoch), so with search.common_seed the
// trials that differ only in their flood level share the epochs before
// that. Every trial of the built-in trainer stores, in the study's
// storage, its state after each epoch it trained as plain training would
// have (a checkpoint), as long as some level of the space could start
// from it, the training it saves outweighs storing it (a small model on
// few samples stores every few epochs), and the study's checkpoints stay
// within search.checkpoint_mb;
// every trial starts from the latest stored checkpoint of its
// configuration that its level allows, and trains only the epochs after
// it. Checkpoints serve every worker of the study, on any machine, and
// outlive a worker's crash; they are deleted when the study's budget is
// spent and no trial runs or waits any more, or with the study.

// defaultCheckpointMB bounds a study's stored checkpoints by default.
const defaultCheckpointMB = 256

// maxCheckpointMB is the largest search.checkpoint_mb (1 TiB).
const maxCheckpointMB = 1 << 20

// Forking reports whether the study's trials start from stored
// checkpoints: the built-in trainer, a searched flood level, common seeds
// and search.fork not false.
func (s *Spec) Forking() bool {
	_, searched := s.Space["flood_level"]
	return !s.External() && searched && s.Search.CommonSeed && (s.Search.Fork == nil || *s.Search.Fork)
}

// checkpointLimit is the study's bound on its stored checkpoints, in bytes.
func (s *Spec) checkpointLimit() int64 {
	if s.Search.CheckpointMB == nil {
		return defaultCheckpointMB << 20
	}
	return int64(*s.Search.CheckpointMB) << 20
}

// sharedConfigs reports whether trials of the study can share a
// configuration but for the flood level and method: whether anything
// but the flood level, the method and discrete options is searched. A
// continuous option (a float range without step) gives every trial a
// configuration of its own, whose checkpoints no other trial could use.
func (s *Spec) sharedConfigs() bool {
	for name, p := range s.Space {
		if name != "flood_level" && name != "flood" && p.Type == Float && p.Step == nil {
			return false
		}
	}
	return true
}

// forkKey names the configuration of runs that follow each other exactly
// while they train as plain training would: everything
// objective.Checkpoint.Forkable compares, whether the test split is
// evaluated every epoch, and which epoch counts as best. (Whether the
// test split is evaluated at each new best epoch is in the checkpoint's
// meta: a run that needs those figures starts only from a run that took
// them.)
func forkKey(c objective.Config) string {
	f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	s := fmt.Sprintf("%shidden=%v optimizer=%s lr=%s momentum=%s weight_decay=%s batch=%d seed=%d test_curve=%t best_by_loss=%t",
		convKey(c.Conv), c.Hidden, c.Optimizer, f(c.LR), f(c.Momentum), f(c.WeightDecay), c.BatchSize, c.Seed, c.TestCurve, c.BestByLoss)
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:16])
}

// convKey is the part of forkKey for a convolutional network's layers;
// nothing for an MLP, whose key stays what it was before there were others.
func convKey(l []objective.ConvLayer) string {
	if len(l) == 0 {
		return ""
	}
	return "conv=" + objective.FormatConv(l) + " "
}

// checkpointMeta is stored beside a checkpoint, so that a worker can pick
// one without reading its tensors.
type checkpointMeta struct {
	Trial         int       `json:"trial"`
	MinLoss       []float64 `json:"min_loss"`
	MinSampleLoss []float64 `json:"min_sample_loss"`
	ValAcc        []float64 `json:"val_acc"`
	ValLoss       []float64 `json:"val_loss"`
	// TestAtBest is set when the run evaluated the test split at each new
	// best epoch.
	TestAtBest bool `json:"test_at_best,omitempty"`
}

// stopsBefore reports whether early stopping (a new stopper from
// newStop) ends a run with these epochs before epoch e.
func (m *checkpointMeta) stopsBefore(e int, newStop func() *stopper) bool {
	st := newStop()
	for i := range e - 1 {
		v := m.ValAcc[i]
		if st.minimize {
			v = m.ValLoss[i]
		}
		// Epochs a run may start from are plain training: no ascents.
		if st.stop(v, 0) {
			return true
		}
	}
	return false
}

// forker starts one trial from a stored checkpoint and stores its plain
// epochs.
type forker struct {
	st      *storage.Store
	studyID int64
	trial   int
	cfg     objective.Config
	key     string
	limit   int64
	write   bool
	low     float64  // the lowest flood level of the space
	methods []method // the flooding methods of its trials
	logger  *slog.Logger
	data    *objective.Data

	stored map[int]bool // epochs stored under the key
	full   bool         // the study's checkpoints reached the limit
	// unsaved is the work (floating-point operations) the run did since
	// the last checkpoint stored under the key: a checkpoint is stored
	// only once it saves more work than writing it and reading it back
	// costs, at flopsPerByte.
	unsaved float64
}

// flopsPerByte prices a byte of checkpoint in floating-point operations of
// training: a core does some 50 GFLOP/s in the model's matrix products, a
// database writes and reads some 200 MB/s.
const flopsPerByte = 250

// epochWork estimates the floating-point operations of an epoch of a
// model with params parameters: a forward and backward pass over every
// training sample, a forward pass over every validation sample.
func epochWork(params int, d *objective.Data) float64 {
	return float64(params) * (6*float64(d.Train.N) + 2*float64(d.Val.N))
}

func newForker(t *Trial, d *objective.Data, logger *slog.Logger) *forker {
	s := t.Spec
	f := &forker{st: t.study.st, studyID: t.study.stored.ID, trial: t.Number, cfg: t.Config, key: forkKey(t.Config),
		limit: s.checkpointLimit(), write: s.sharedConfigs() && s.checkpointLimit() > 0, logger: logger, data: d, stored: map[int]bool{}}
	if p := s.Space["flood_level"]; p.Low != nil {
		f.low = *p.Low
	}
	if _, searched := s.Space["flood"]; searched {
		f.methods = []method{method(flood.Batch), method(flood.Individual)}
	} else {
		f.methods = []method{method(t.Config.Flood)}
	}
	return f
}

// from returns the latest stored checkpoint the trial's run may start
// from, with the trial that stored it, or nil: one of an epoch before its
// level first ascends, and not after the epoch at which early stopping
// (newStop) would end the run. A checkpoint that cannot be read or used is
// passed over (the run trains those epochs itself); the storage's failures
// are returned.
func (f *forker) from(ctx context.Context, d *objective.Data, newStop func() *stopper) (*objective.Checkpoint, int, error) {
	infos, err := f.st.Checkpoints(ctx, f.studyID, f.key)
	if err != nil {
		return nil, 0, fmt.Errorf("list the study's checkpoints: %w", fromStorage(err))
	}
	for i := len(infos) - 1; i >= 0; i-- {
		info := infos[i]
		f.stored[info.Epoch] = true
		var m checkpointMeta
		if info.Epoch > f.cfg.Epochs || json.Unmarshal([]byte(info.Meta), &m) != nil ||
			len(m.MinLoss) < info.Epoch || len(m.MinSampleLoss) < info.Epoch || len(m.ValAcc) < info.Epoch || len(m.ValLoss) < info.Epoch ||
			objective.ForkEpoch(m.MinLoss[:info.Epoch], m.MinSampleLoss[:info.Epoch], f.cfg.Flood, f.cfg.FloodLevel) < info.Epoch ||
			m.stopsBefore(info.Epoch, newStop) || f.cfg.TestAtBest && !m.TestAtBest {
			continue
		}
		for _, earlier := range infos[:i] {
			f.stored[earlier.Epoch] = true
		}
		data, err := f.st.Checkpoint(ctx, f.studyID, f.key, info.Epoch)
		if errors.Is(err, storage.ErrNotFound) {
			// Deleted since it was listed: the study ended.
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read the checkpoint of epoch %d: %w", info.Epoch, fromStorage(err))
		}
		cp := new(objective.Checkpoint)
		if err := cp.UnmarshalBinary(data); err != nil {
			f.logger.Warn("a stored checkpoint is unusable; training its epochs", "trial", f.trial, "epoch", info.Epoch, "err", err)
			continue
		}
		if err := cp.Forkable(d, f.cfg); err != nil {
			f.logger.Warn("a stored checkpoint does not fit the trial; training its epochs", "trial", f.trial, "epoch", info.Epoch, "err", err)
			continue
		}
		return cp, m.Trial, nil
	}
	return nil, 0, nil
}

// keep stores cp, the run's state after an epoch, if it is the state of
// plain training, no checkpoint of that epoch is stored yet, a level of
// the space could start from it, and the study's bound allows.
func (f *forker) keep(ctx context.Context, cp *objective.Checkpoint) error {
	e := cp.Epoch
	if !f.write || f.full {
		return nil
	}
	params, bytes := 0, 0
	for _, p := range cp.Params {
		params += len(p)
	}
	for _, p := range slices.Concat(cp.Params, cp.OptState, cp.BestParams) {
		bytes += 4 * len(p)
	}
	f.unsaved += epochWork(params, f.data)
	if f.stored[e] {
		f.unsaved = 0
		return nil
	}
	if objective.ForkEpoch(cp.MinLoss, cp.MinSampleLoss, f.cfg.Flood, f.cfg.FloodLevel) < e {
		// The run has flooded: its later states are its own.
		f.write = false
		return nil
	}
	// The levels that may start from epoch e lie at or below the smallest
	// minimum of epochs 1..e of the method's loss (the minibatch loss for
	// flood, the per-sample loss for iflood).
	reach := math.Inf(-1)
	for _, m := range f.methods {
		r := math.Inf(1)
		for i := range e {
			r = min(r, m.min(cp, i))
		}
		reach = max(reach, r)
	}
	if reach < f.low {
		f.write = false
		return nil
	}
	m := checkpointMeta{Trial: f.trial, MinLoss: cp.MinLoss[:e], MinSampleLoss: cp.MinSampleLoss[:e], TestAtBest: f.cfg.TestAtBest}
	for _, r := range cp.History[:e] {
		m.ValAcc, m.ValLoss = append(m.ValAcc, r.ValAcc), append(m.ValLoss, r.ValLoss)
	}
	if f.unsaved < flopsPerByte*float64(bytes) {
		// Cheaper to train these epochs again than to store them.
		return nil
	}
	meta, err := json.Marshal(m)
	if err != nil {
		// A minimum that JSON cannot hold (an infinite loss): nothing
		// could start from it.
		f.write = false
		return nil
	}
	data, err := cp.MarshalBinary()
	if err != nil {
		return err
	}
	ok, err := f.st.PutCheckpoint(ctx, f.studyID, f.key, e, string(meta), data, f.limit)
	if err != nil {
		return fmt.Errorf("store the checkpoint of epoch %d: %w", e, fromStorage(err))
	}
	f.stored[e], f.unsaved = true, 0
	if !ok {
		// Another worker stored it first, or the bound is reached; in the
		// second case no later epoch fits either.
		if _, used, err := f.st.CheckpointUsage(ctx, f.studyID); err == nil && used+int64(len(data)) > f.limit {
			f.full = true
		}
	}
	return nil
}

// method is a flooding method a study's trials may use, and the minimum
// of an epoch that decides whether a level floods with it.
type method flood.Method

func (m method) min(cp *objective.Checkpoint, epoch int) float64 {
	if flood.Method(m) == flood.Individual {
		return cp.MinSampleLoss[epoch]
	}
	return cp.MinLoss[epoch]
}
