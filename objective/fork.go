package objective

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"fmt"
	"math"
	"slices"

	"github.com/floodtune/floodtune/flood"
)

// Flooding is plain training until the loss first drops below the level:
// with batch flooding the update equals the plain update at every step
// whose minibatch loss J is at least b, with individual flooding at every
// step whose per-sample losses all are. A run at level b therefore follows
// the plain run of the same data, seed and other options exactly, bit for
// bit, up to the first epoch with a step below b, and can start from the
// plain run's state at the end of the epoch before instead of training
// that prefix again.

// Checkpoint is a run's state at the end of an epoch: enough to go on from
// there exactly as the run itself would have, at any flood level that has
// not flooded yet (see ForkEpoch).
type Checkpoint struct {
	Epoch int // the epochs done
	Steps int // the optimizer steps done
	// Params are the model's parameters, aligned with Model.Params;
	// OptState the optimizer's buffers (momentum's, or Adam's first then
	// second moments), OptSteps Adam's step count.
	Params   [][]float32
	OptState [][]float32
	OptSteps int
	// History holds the reports of the epochs done; MinLoss and
	// MinSampleLoss, per epoch done, the smallest minibatch loss J and the
	// smallest per-sample loss of any step (the conditions of batch and
	// individual flooding).
	History       []EpochReport
	MinLoss       []float64
	MinSampleLoss []float64
	// Best is the best validation epoch so far, as Result has it.
	Best Result
	// BestPending is set when the run takes the best epoch's test
	// figures at its end (Config.TestAtBest) and they are still to be
	// taken: from BestParams, the best epoch's parameters, or from Params
	// when BestParams is nil (the best epoch is this one).
	BestPending bool
	BestParams  [][]float32
	// Config is the configuration of the run the checkpoint was taken from.
	Config Config
}

// ForkEpoch returns the number of leading epochs of a run, described by the
// per-epoch minima of a plain run (Checkpoint.MinLoss and MinSampleLoss),
// during which flooding with method m at level b never ascends: the epoch
// from whose checkpoint a run at that level may start (0: from scratch).
func ForkEpoch(minLoss, minSampleLoss []float64, m flood.Method, b float64) int {
	var mins []float64
	switch m {
	case flood.Batch:
		mins = minLoss
	case flood.Individual:
		mins = minSampleLoss
	default:
		return len(minLoss)
	}
	e := 0
	for e < len(mins) && mins[e] >= b {
		e++
	}
	return e
}

// Forkable reports why a run under c cannot start from cp, or nil: the
// checkpoint must come from a run of the same model, optimizer, batches and
// seed, at a flood level that had not flooded by then (ForkEpoch), on the
// same data.
func (cp *Checkpoint) Forkable(d *Data, c Config) error {
	p := cp.Config
	switch {
	case !slices.Equal(p.Conv, c.Conv) || !slices.Equal(p.Hidden, c.Hidden) || p.Optimizer != c.Optimizer || p.LR != c.LR || p.Momentum != c.Momentum ||
		p.WeightDecay != c.WeightDecay || p.BatchSize != c.BatchSize || p.Seed != c.Seed:
		return fmt.Errorf("the checkpoint is of another configuration (%+v) than the run's (%+v)", p, c)
	case cp.Epoch > c.Epochs:
		return fmt.Errorf("the checkpoint is of epoch %d, beyond the run's %d epochs", cp.Epoch, c.Epochs)
	case len(cp.MinLoss) < cp.Epoch || len(cp.MinSampleLoss) < cp.Epoch || len(cp.History) < cp.Epoch:
		return fmt.Errorf("the checkpoint of epoch %d lacks the figures of its epochs", cp.Epoch)
	case ForkEpoch(cp.MinLoss[:cp.Epoch], cp.MinSampleLoss[:cp.Epoch], c.Flood, c.FloodLevel) < cp.Epoch:
		return fmt.Errorf("flooding %s at b = %v would have ascended before the end of epoch %d", c.Flood, c.FloodLevel, cp.Epoch)
	}
	// The model's tensors (Model.Params), on d.
	m, err := c.newModel(d)
	if err != nil {
		return err
	}
	want := m.Params()
	if len(cp.Params) != len(want) {
		return fmt.Errorf("the checkpoint holds %d parameter tensors, the model %d", len(cp.Params), len(want))
	}
	for i, w := range want {
		if got := len(cp.Params[i]); got != len(w) {
			return fmt.Errorf("parameter tensor %d has %d values in the checkpoint, %d in the model", i, got, len(w))
		}
	}
	return nil
}

// RunOptions are what a run is given beyond its Config.
type RunOptions struct {
	// OnEpoch is called after every epoch the run trains (not after the
	// epochs it starts from).
	OnEpoch EpochFunc
	// From is a checkpoint the run starts from instead of from scratch;
	// it must be Forkable.
	From *Checkpoint
	// OnCheckpoint is called with the run's state after every epoch; the
	// checkpoint is the caller's to keep.
	OnCheckpoint func(*Checkpoint) error
}

// bestParams are the parameters of the best epoch whose test figures are
// pending.
func (cp *Checkpoint) bestParams() [][]float32 {
	if cp.BestParams != nil {
		return cp.BestParams
	}
	return cp.Params
}

// checkpoint copies the trainer's state after epoch; best holds the best
// epoch's parameters while its test figures are pending.
func (t *trainer) checkpoint(epoch int, res *Result, minLoss, minSample []float64, best [][]float32) *Checkpoint {
	cp := &Checkpoint{Epoch: epoch, Steps: t.steps, Config: t.cfg,
		History: slices.Clone(res.History), MinLoss: slices.Clone(minLoss), MinSampleLoss: slices.Clone(minSample)}
	cp.Config.Hidden = slices.Clone(t.cfg.Hidden)
	cp.Config.Conv = slices.Clone(t.cfg.Conv)
	cp.Best = Result{BestEpoch: res.BestEpoch, BestValLoss: res.BestValLoss, BestValAcc: res.BestValAcc,
		BestTestLoss: res.BestTestLoss, BestTestAcc: res.BestTestAcc, BestTested: res.BestTested}
	for _, p := range t.params {
		cp.Params = append(cp.Params, slices.Clone(p))
	}
	cp.OptState, cp.OptSteps = t.opt.state()
	if best != nil {
		cp.BestPending = true
		if res.BestEpoch != epoch {
			cp.BestParams = cloneAll(best)
		}
	}
	return cp
}

// restore puts the trainer in the state of cp.
func (t *trainer) restore(cp *Checkpoint) error {
	for i, p := range t.params {
		copy(p, cp.Params[i])
	}
	if err := t.opt.restore(cp.OptState, cp.OptSteps); err != nil {
		return err
	}
	t.steps = cp.Steps
	return nil
}

// minSampleLoss is the smallest per-sample loss of the last training pass
// of n over rows samples.
func (n *net) minSampleLoss(rows int) float64 {
	l := float32s(n.prog.value(n.losses))
	m := math.Inf(1)
	for _, v := range l[:rows] {
		m = min(m, float64(v))
	}
	return m
}

// checkpointMagic starts an encoded Checkpoint, followed by its format
// version.
const checkpointMagic = "floodtune-checkpoint\x00"

const checkpointVersion = 1

// checkpointHeader is what an encoded Checkpoint holds besides its
// tensors, whose lengths it records.
type checkpointHeader struct {
	Epoch, Steps, OptSteps int
	History                []EpochReport
	MinLoss, MinSampleLoss []float64
	Best                   Result
	BestPending            bool
	Config                 Config
	ParamLens, OptLens     []int
	BestLens               []int
}

// MarshalBinary encodes the checkpoint: a header, then its tensors as
// little-endian float32s, so that a checkpoint is about as large as its
// parameters and optimizer buffers.
func (cp *Checkpoint) MarshalBinary() ([]byte, error) {
	h := checkpointHeader{Epoch: cp.Epoch, Steps: cp.Steps, OptSteps: cp.OptSteps, History: cp.History,
		MinLoss: cp.MinLoss, MinSampleLoss: cp.MinSampleLoss, Best: cp.Best, BestPending: cp.BestPending, Config: cp.Config}
	n := 0
	for _, p := range cp.Params {
		h.ParamLens = append(h.ParamLens, len(p))
		n += len(p)
	}
	for _, p := range cp.OptState {
		h.OptLens = append(h.OptLens, len(p))
		n += len(p)
	}
	for _, p := range cp.BestParams {
		h.BestLens = append(h.BestLens, len(p))
		n += len(p)
	}
	var hb bytes.Buffer
	if err := gob.NewEncoder(&hb).Encode(&h); err != nil {
		return nil, fmt.Errorf("encode a checkpoint: %w", err)
	}
	out := make([]byte, 0, len(checkpointMagic)+1+4+hb.Len()+4*n)
	out = append(out, checkpointMagic...)
	out = append(out, checkpointVersion)
	out = binary.LittleEndian.AppendUint32(out, uint32(hb.Len()))
	out = append(out, hb.Bytes()...)
	for _, ts := range [][][]float32{cp.Params, cp.OptState, cp.BestParams} {
		for _, p := range ts {
			for _, v := range p {
				out = binary.LittleEndian.AppendUint32(out, math.Float32bits(v))
			}
		}
	}
	return out, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (cp *Checkpoint) UnmarshalBinary(data []byte) error {
	bad := func(why string) error { return fmt.Errorf("decode a checkpoint: %s", why) }
	if !bytes.HasPrefix(data, []byte(checkpointMagic)) {
		return bad("not a floodtune checkpoint")
	}
	data = data[len(checkpointMagic):]
	if len(data) < 5 {
		return bad("truncated")
	}
	if data[0] != checkpointVersion {
		return bad(fmt.Sprintf("format version %d, this floodtune reads %d", data[0], checkpointVersion))
	}
	hl := binary.LittleEndian.Uint32(data[1:5])
	data = data[5:]
	if uint64(hl) > uint64(len(data)) {
		return bad("truncated header")
	}
	var h checkpointHeader
	if err := gob.NewDecoder(bytes.NewReader(data[:hl])).Decode(&h); err != nil {
		return bad(err.Error())
	}
	data = data[hl:]
	n := 0
	for _, l := range slices.Concat(h.ParamLens, h.OptLens, h.BestLens) {
		if l < 0 || l > MaxParameters {
			return bad("a tensor's length is out of range")
		}
		n += l
	}
	if len(data) != 4*n {
		return bad(fmt.Sprintf("%d bytes of tensors, want %d", len(data), 4*n))
	}
	read := func(lens []int) [][]float32 {
		var ts [][]float32
		for _, l := range lens {
			p := make([]float32, l)
			for i := range p {
				p[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
			data = data[4*l:]
			ts = append(ts, p)
		}
		return ts
	}
	*cp = Checkpoint{Epoch: h.Epoch, Steps: h.Steps, OptSteps: h.OptSteps, History: h.History,
		MinLoss: h.MinLoss, MinSampleLoss: h.MinSampleLoss, Best: h.Best, BestPending: h.BestPending, Config: h.Config}
	cp.Params = read(h.ParamLens)
	cp.OptState = read(h.OptLens)
	cp.BestParams = read(h.BestLens)
	return nil
}
