package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/floodtune/floodtune/search"
	"io"
	"os"
	"time"

	"github.com/floodtune/floodtune/flood"
	"github.com/floodtune/floodtune/objective"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

type trainFlags struct {
	data    objective.DatasetSpec
	cfg     objective.Config
	flood   string
	model   string
	conv    string
	hidden  string
	threads int
	json    bool
}

func newTrainCmd() *cobra.Command {
	f := &trainFlags{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train one model with the flooded loss and report its losses and accuracies",
		Long: `train runs one training of an MLP (ReLU hidden layers, softmax cross-entropy),
or of a convolutional network (--model cnn) on a dataset of images,
with the flooded loss and reports, after every epoch, the training loss and the
validation loss and accuracy; at the end, the loss and accuracy of the final
model on the training, validation and test sets and the share of steps that
ascended (the loss was below the flood level).

Datasets: mnist (the real MNIST: 48,000 train / 12,000 validation / 10,000
test), the synthetic sets of the flooding paper gauss2d, sinusoid2d and spiral
(--train-size, --val-size, --test-size), and csv:PATH (numeric features, an
integer label in the last column), and idx:DIR, any data set of images in
MNIST's IDX format (Fashion-MNIST, Kuzushiji-MNIST, EMNIST; DIR holds its four
files, gzipped or not, or name them: idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS).
--label-noise replaces that fraction of the training and validation labels by
another class (never the test labels).

Models: --model mlp (the default) has the hidden layers --hidden; --model cnn
(images only: mnist, idx:DIR) has the convolutional layers --conv, each
CHANNELS:KERNEL with any of :sSTRIDE, :pPADDING and :poolN (a ReLU, then max
pooling over N×N windows), then dense layers --hidden (default 256). The
default --conv, 16:5:p2:pool2,32:5:p2:pool2, is LeNet-style: 28×28 → 14×14 →
7×7 feature maps of 16 then 32 channels.

Flooding: --flood flood floods the minibatch mean loss J as |J − b| + b;
--flood iflood floods every sample's loss (iFlood); --flood none is plain
training, as is a level of 0. With symmetric label noise η over K classes, a
good first guess for b is the irreducible loss −(1−η)ln(1−η) − η ln(η/(K−1)),
about 0.8 for MNIST with 20% noise.`,
		Example: `  floodtune train --dataset mnist --label-noise 0.2 --flood flood --flood-level 0.8 \
    --hidden 500,500 --optimizer momentum --lr 0.1 --batch-size 128 --epochs 30 --seed 0 --json
  floodtune train --dataset gauss2d --train-size 100 --val-size 100 --label-noise 0.05 \
    --hidden 500,500,500,500 --optimizer adam --lr 0.001 --batch-size 50 --epochs 500 --flood-level 0.3
  floodtune train --dataset mnist --label-noise 0.4 --model cnn --conv 16:5:p2:pool2,32:5:p2:pool2 \
    --hidden 256 --lr 0.05 --epochs 10 --flood-level 1.5
  floodtune train --dataset idx:data/fashion-mnist --model cnn --flood-level 0.2`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTrain(cmd, f) },
	}
	fl := cmd.Flags()
	fl.SortFlags = false
	fl.StringVar(&f.data.Name, "dataset", "mnist", "mnist, gauss2d, sinusoid2d, spiral, csv:PATH or idx:DIR")
	fl.Float64Var(&f.data.LabelNoise, "label-noise", 0, "fraction of training and validation labels replaced by another class")
	fl.IntVar(&f.data.TrainSize, "train-size", 0, "training rows (0: the dataset's default)")
	fl.IntVar(&f.data.ValSize, "val-size", 0, "validation rows (0: a fifth of the training pool)")
	fl.IntVar(&f.data.TestSize, "test-size", 0, "test rows (0: the dataset's default)")
	fl.StringVar(&f.data.DataDir, "data-dir", "", "directory with MNIST's idx .gz files (default: search FLOODTUNE_MNIST_DIR, ./data/mnist, the Go module cache)")
	fl.StringVar(&f.data.TestCSV, "test-csv", "", "csv datasets: a separate test file (default: hold out a fifth of the rows)")
	fl.StringVar(&f.flood, "flood", "flood", "flooding method: none, flood (batch) or iflood (individual)")
	fl.Float64Var(&f.cfg.FloodLevel, "flood-level", 0, "the flood level b ≥ 0 (0 is plain training)")
	fl.StringVar(&f.model, "model", string(search.ModelMLP), "mlp, or cnn: a convolutional network (images only)")
	fl.StringVar(&f.conv, "conv", objective.FormatConv(objective.LeNet), "--model cnn: the convolutional layers, CHANNELS:KERNEL[:sSTRIDE][:pPADDING][:poolN], comma-separated")
	fl.StringVar(&f.hidden, "hidden", "500,500", "hidden layer widths, comma-separated (with --model cnn: the dense layers after the convolutions, default 256)")
	fl.StringVar(&f.cfg.Optimizer, "optimizer", objective.Momentum, "sgd, momentum or adam")
	fl.Float64Var(&f.cfg.LR, "lr", 0.1, "learning rate")
	fl.Float64Var(&f.cfg.Momentum, "momentum", 0.9, "momentum of the momentum optimizer")
	fl.Float64Var(&f.cfg.WeightDecay, "weight-decay", 0, "L2 weight decay")
	fl.IntVar(&f.cfg.BatchSize, "batch-size", 128, "minibatch size")
	fl.IntVar(&f.cfg.Epochs, "epochs", 10, "passes over the training set")
	fl.Int64Var(&f.cfg.Seed, "seed", 0, "seeds the data split, label noise, initialisation and batch order")
	fl.IntVar(&f.threads, "threads", 1, "BLAS threads; the result is reproducible for a fixed count")
	fl.BoolVar(&f.json, "json", false, "print one JSON object with the result instead of the log")
	return cmd
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return badInput(fmt.Errorf("%s takes no arguments, got %q (flags start with --)", cmd.CommandPath(), args[0]))
	}
	return nil
}

// trainOutput is the JSON printed by train --json.
type trainOutput struct {
	*objective.Result
	Dataset    string  `json:"dataset"`
	Model      string  `json:"model"`
	Conv       string  `json:"conv,omitempty"`
	Hidden     []int   `json:"hidden"`
	LabelNoise float64 `json:"label_noise"`
	Flood      string  `json:"flood"`
	FloodLevel float64 `json:"flood_level"`
	Seed       int64   `json:"seed"`
	BLAS       string  `json:"blas"`
	Threads    int     `json:"threads"`
}

func runTrain(cmd *cobra.Command, f *trainFlags) error {
	ctx := cmd.Context()
	method, err := flood.ParseMethod(f.flood)
	if err != nil {
		return badInput(err)
	}
	f.cfg.Flood = method
	hidden := f.hidden
	switch search.ModelType(f.model) {
	case search.ModelMLP:
		if cmd.Flags().Changed("conv") {
			return badInput(errors.New("--conv: convolutional layers need --model cnn"))
		}
	case search.ModelCNN:
		if f.cfg.Conv, err = objective.ParseConv(f.conv); err != nil {
			return badInput(err)
		}
		if !cmd.Flags().Changed("hidden") {
			hidden = "256"
		}
	default:
		return badInput(fmt.Errorf("--model %q: want mlp or cnn", f.model))
	}
	if f.cfg.Hidden, err = search.ParseWidths(hidden); err != nil {
		return badInput(err)
	}
	f.data.Seed = f.cfg.Seed
	if f.threads < 1 {
		return badInput(fmt.Errorf("threads: must be at least 1, got %d", f.threads))
	}
	if err := f.cfg.Validate(); err != nil {
		return badInput(err)
	}
	if err := f.data.Validate(); err != nil {
		return badInput(err)
	}
	objective.SetBLASThreads(f.threads)
	data, err := objective.LoadDataset(ctx, f.data)
	if err != nil {
		if errors.Is(err, objective.ErrDatasetNotFound) {
			return badInput(err)
		}
		return err
	}
	if err := f.cfg.ValidateFor(data); err != nil {
		return badInput(err)
	}
	out := cmd.OutOrStdout()
	log := newEpochLog(out, cmd.ErrOrStderr(), f.cfg.Epochs, f.json)
	if !f.json {
		fmt.Fprintf(out, "%s: %d train / %d validation / %d test rows, %d features, %d classes; label noise %g (%d train, %d validation labels changed)\n",
			printable(data.Name), data.Train.N, data.Val.N, data.Test.N, data.Features, data.Classes, f.data.LabelNoise, data.NoisyTrain, data.NoisyVal)
		model := fmt.Sprint(f.cfg.Hidden)
		if len(f.cfg.Conv) > 0 {
			model = fmt.Sprintf("cnn %s on %s images, dense %v", objective.FormatConv(f.cfg.Conv), data.Image, f.cfg.Hidden)
		}
		fmt.Fprintf(out, "model %s, %s lr %g, batch %d, %d epochs, flooding %s at b = %g, seed %d, %s\n",
			model, f.cfg.Optimizer, f.cfg.LR, f.cfg.BatchSize, f.cfg.Epochs, method, f.cfg.FloodLevel, f.cfg.Seed, objective.BLAS())
	}
	res, err := objective.Train(ctx, data, f.cfg, log.epoch)
	log.finish()
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if f.json {
		enc := json.NewEncoder(out)
		return enc.Encode(trainOutput{
			Result: res, Dataset: data.Name, Model: f.model, Conv: objective.FormatConv(f.cfg.Conv), Hidden: f.cfg.Hidden,
			LabelNoise: f.data.LabelNoise, Flood: string(method),
			FloodLevel: f.cfg.FloodLevel, Seed: f.cfg.Seed, BLAS: objective.BLAS(), Threads: f.threads,
		})
	}
	fmt.Fprintf(out, "final: train loss %.4f acc %.2f%% | val loss %.4f acc %.2f%% | test loss %.4f acc %.2f%% | ascent %.1f%% of %d steps | %s\n",
		res.TrainLoss, 100*res.TrainAcc, res.ValLoss, 100*res.ValAcc, res.TestLoss, 100*res.TestAcc,
		100*res.AscentFraction, res.Steps, time.Duration(res.Seconds*float64(time.Second)).Round(time.Millisecond))
	return nil
}

// epochLog prints one line per epoch, with a progress bar on stderr when
// stderr is a terminal; it prints nothing in JSON mode.
type epochLog struct {
	out    io.Writer
	bar    *progressbar.ProgressBar
	epochs int
	quiet  bool
}

func newEpochLog(out, errOut io.Writer, epochs int, quiet bool) *epochLog {
	l := &epochLog{out: out, epochs: epochs, quiet: quiet}
	if file, ok := errOut.(*os.File); ok && !quiet && term.IsTerminal(int(file.Fd())) {
		l.bar = progressbar.NewOptions(epochs,
			progressbar.OptionSetWriter(errOut),
			progressbar.OptionSetDescription("training"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	return l
}

func (l *epochLog) epoch(r objective.EpochReport) error {
	if l.quiet {
		return nil
	}
	if l.bar != nil {
		_ = l.bar.Clear()
	}
	fmt.Fprintf(l.out, "epoch %*d/%d  train loss %.4f acc %6.2f%%  val loss %.4f acc %6.2f%%  ascent %5.1f%%  %.1fs\n",
		len(fmt.Sprint(l.epochs)), r.Epoch, l.epochs, r.TrainLoss, 100*r.TrainAcc, r.ValLoss, 100*r.ValAcc, 100*r.AscentFraction, r.Seconds)
	if l.bar != nil {
		l.bar.Describe(fmt.Sprintf("val acc %.2f%%", 100*r.ValAcc))
		_ = l.bar.Add(1)
	}
	return nil
}

func (l *epochLog) finish() {
	if l.bar != nil {
		_ = l.bar.Finish()
	}
}
