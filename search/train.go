package search

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/floodtune/floodtune/metrics"
	"github.com/floodtune/floodtune/objective"
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
)

// FormatCurve writes f of each epoch as a JSON array of numbers, six
// significant digits each.
func FormatCurve(history []objective.EpochReport, f func(objective.EpochReport) float64) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, e := range history {
		if i > 0 {
			b.WriteByte(',')
		}
		v := f(e)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			b.WriteString("null")
			continue
		}
		b.WriteString(strconv.FormatFloat(v, 'g', 6, 64))
	}
	b.WriteByte(']')
	return b.String()
}

// ParseCurve reads a curve that FormatCurve wrote; null reads as NaN.
func ParseCurve(s string) ([]float64, error) {
	var raw []*float64
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, fmt.Errorf("a curve: %w", err)
	}
	out := make([]float64, len(raw))
	for i, v := range raw {
		out[i] = math.NaN()
		if v != nil {
			out[i] = *v
		}
	}
	return out, nil
}

// builtin is the built-in objective of one Optimize call: it trains the
// spec's MLP on its dataset, loaded once for all the call's trials, and
// returns the validation accuracy (or loss).
type builtin struct {
	study   string
	spec    *Spec
	metrics *metrics.Metrics

	once sync.Once
	data *objective.Data
	err  error
}

func (b *builtin) run(ctx context.Context, t *Trial) (float64, error) {
	b.once.Do(func() {
		// Not the trial's context: the data serve every later trial, even
		// if this one is cancelled while they load.
		b.data, b.err = b.spec.LoadData(context.WithoutCancel(ctx))
	})
	if b.err != nil {
		return math.NaN(), b.err
	}
	minimize := b.spec.Direction() == Minimize
	res, err := objective.Train(ctx, b.data, t.Config, func(e objective.EpochReport) error {
		b.metrics.Epoch(b.study, t.slot, e.Epoch, e.TrainLoss, e.ValAcc, e.AscentFraction, time.Duration(e.Seconds*float64(time.Second)))
		v := e.ValAcc
		if minimize {
			v = e.ValLoss
		}
		return t.Report(ctx, e.Epoch, v)
	})
	if res != nil {
		curves := map[string]func(objective.EpochReport) float64{
			TrainLossCurveAttr: func(e objective.EpochReport) float64 { return e.TrainLoss },
			ValLossCurveAttr:   func(e objective.EpochReport) float64 { return e.ValLoss },
		}
		if t.Config.TestCurve {
			curves[TestLossCurveAttr] = func(e objective.EpochReport) float64 { return e.TestLoss }
			curves[TestAccCurveAttr] = func(e objective.EpochReport) float64 { return e.TestAcc }
		}
		for name, f := range curves {
			t.Attrs[name] = FormatCurve(res.History, f)
		}
		t.Attrs["ascent_fraction"] = strconv.FormatFloat(res.AscentFraction, 'g', -1, 64)
		t.Attrs["epochs"] = strconv.Itoa(res.Epochs)
		t.Attrs["seconds"] = strconv.FormatFloat(res.Seconds, 'g', 6, 64)
	}
	if err != nil {
		return math.NaN(), err
	}
	for k, v := range map[string]float64{"test_acc": res.TestAcc, "test_loss": res.TestLoss, "train_loss": res.TrainLoss, "train_acc": res.TrainAcc, "val_loss": res.ValLoss, "val_acc": res.ValAcc} {
		t.Attrs[k] = strconv.FormatFloat(v, 'g', -1, 64)
	}
	if minimize {
		return res.ValLoss, nil
	}
	return res.ValAcc, nil
}
