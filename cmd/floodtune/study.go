package main

import (
	"bufio"
	"errors"
	"fmt"
	"github.com/floodtune/floodtune/plot"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newStudyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "study",
		Short: "Create, run and inspect searches of the flood level (studies)",
		Long: `A study is one search: a spec that fixes the data, the model and the training
options, and a space of options to search (the flood level b first of all),
with a budget of trials. Studies live in the storage (--storage or
FLOODTUNE_STORAGE; default sqlite:floodtune.db), so any number of processes,
on any number of machines sharing a PostgreSQL server, can work on one study,
and a study that was stopped resumes where it was.

The first trial of a study is, unless told otherwise, plain training (b = 0):
study show puts it beside the best trial, so you can see whether flooding
helped.`,
		Example: `  floodtune study create noise20 --spec study.yaml
  floodtune study optimize noise20 --workers 8
  floodtune study show noise20
  floodtune study trials noise20 --format csv > trials.csv`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return badInput(fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), subcommands(cmd)))
		},
	}
	cmd.AddCommand(newStudyCreateCmd(), newStudyOptimizeCmd(), newStudyListCmd(), newStudyShowCmd(),
		newStudyTrialsCmd(), newStudyBestCmd(), newStudyEnqueueCmd(), newStudyDeleteCmd(), newStudyPlotCmd())
	return cmd
}

func subcommands(cmd *cobra.Command) string {
	var names []string
	for _, c := range cmd.Commands() {
		if c.IsAvailableCommand() {
			names = append(names, c.Name())
		}
	}
	return strings.Join(names, ", ")
}

// exactArgs checks that a command gets its n arguments, described by what
// ("the study's name").
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) != n {
			return badInput(fmt.Errorf("%s: want %s, got %d argument(s)", cmd.UseLine(), what, len(a)))
		}
		return nil
	}
}

// isTerminal reports whether a command's input or output is a terminal.
func isTerminal(v any) bool {
	if o, ok := v.(*output); ok {
		v = o.file()
	}
	f, ok := v.(*os.File)
	return ok && f != nil && term.IsTerminal(int(f.Fd()))
}

const specExample = `  dataset:  {name: mnist, label_noise: 0.2}
  model:    {hidden: [500, 500]}
  training: {optimizer: momentum, batch_size: 128, epochs: 30}
  search:   {trials: 50, seed: 1, sampler: tpe, pruner: median}
  space:
    flood_level: {type: float, low: 0, high: 2}
    lr:          {type: float, low: 0.001, high: 0.3, log: true}`

func newStudyCreateCmd() *cobra.Command {
	var specPath string
	var noBaseline bool
	cmd := &cobra.Command{
		Use:   "create NAME --spec FILE",
		Short: "Create a study from a spec file (YAML or JSON)",
		Long: `create checks the spec, reporting every problem it has at once, and stores
it as a new study called NAME; it trains nothing (study optimize does).

The spec fixes the dataset, the model and the training options, sets the
search (trials: the budget, seed, sampler tpe|random|cmaes, pruner
none|median|successive_halving, objective val_acc|val_loss) and names the
options to search under space, each a float or int range (low, high, and log
or step) or a list of categorical choices. For example:

` + specExample + `

The model is an MLP of the widths model.hidden (default 500,500) unless
model.type is cnn: a convolutional network on a dataset of images (mnist,
idx:DIR) with the layers model.conv, each {channels, kernel, stride,
padding, pool} (a ReLU, then max pooling over pool×pool windows; default
LeNet-style, 16:5:p2:pool2,32:5:p2:pool2), then dense layers model.hidden
(default 256). space.conv searches architectures, as choices written
CHANNELS:KERNEL[:sSTRIDE][:pPADDING][:poolN] layer after layer:

  model: {type: cnn, hidden: [256]}
  space:
    conv: {type: categorical, choices: ["16:5:p2:pool2,32:5:p2:pool2", "32:3:p1:pool2,64:3:p1:pool2"]}

A trial's value is its last epoch's validation figure unless
search.epoch_value says otherwise: best takes its best epoch's (the run
stopped early there, and its test accuracy at that epoch is recorded and
shown), mean_last the mean over the last search.epoch_window epochs (default
3), which smooths the epoch-to-epoch noise of a flooded run. Every trial
records its best epoch.

Searches that know flooding:

  search.common_seed: true    trials whose options differ only in the flood
      level (and method) train from one seed: the same initial model and
      batch order, so that levels are compared without the noise of the seed.
  search.fork (default true with common_seed)    a flooded run is plain
      training until its loss first drops below its level, so each trial
      starts from the stored state of a run of its configuration at the last
      epoch before that, instead of training those epochs again; the result
      is the same, bit for bit. States are stored in the study's storage
      (every worker reads them), only while some level of the space could
      start from them and only for spaces whose other options are discrete
      (a continuous lr gives each trial a configuration of its own), within
      search.checkpoint_mb (default 256; 0 stores none); they are deleted
      when the study's last trial ends, and with the study.
  search.early_stopping: {patience: N, min_delta: D}    a run stops once its
      validation value has not beaten its best by more than D (default 0)
      for N epochs in a row; a run's first epoch with ascents starts the
      count afresh, since a flooded run's validation value often drops as it
      starts to ascend and recovers later. With epoch_value: best, stopping
      keeps the run's best epoch.
  space.flood_level.center: noise    moves the flood-level range onto the
      irreducible loss of the dataset's label noise, and runs the first trial
      at it.

On MNIST with 20% and 40% label noise, common_seed with epoch_value: best and
early_stopping: {patience: 3} reached the best validation accuracy of an
Optuna + PyTorch search in about a tenth of its time (docs/performance.md).

Unless --no-baseline is given (or the spec says search.baseline: false), the
study's first trial is enqueued as plain training (flood level 0), so that
study show can tell whether flooding helped: against plain training's last
epoch, and against plain training stopped at its best validation epoch
(early stopping).`,
		Example: `  floodtune study create noise20 --spec study.yaml
  floodtune study create noise20-pg --spec study.json --storage postgres://floodtune@db/floodtune
  cat study.yaml | floodtune study create noise20 --spec -`,
		Args: exactArgs(1, "the new study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if err := storage.CheckName(name); err != nil {
				return badInput(err)
			}
			if specPath == "" {
				return badInput(errors.New("--spec FILE is required: the study's spec, in YAML or JSON (floodtune study create --help shows one)"))
			}
			spec, err := loadSpecFile(cmd, specPath)
			if err != nil {
				return badInput(err)
			}
			if noBaseline {
				off := false
				spec.Search.Baseline = &off
			}
			st, err := openStorage(cmd)
			if err != nil {
				return err
			}
			defer st.Close()
			study, err := search.Create(cmd.Context(), st, name, spec)
			switch {
			case errors.Is(err, storage.ErrStudyExists):
				return badInput(fmt.Errorf("a study named %q already exists in %s: choose another name, or delete it first (floodtune study delete)", name, st.URL()))
			case errors.Is(err, search.ErrBadSpec):
				return badInput(fmt.Errorf("%s: %w", specPath, err))
			case err != nil:
				// Nothing was written: the study and its first trials are
				// one transaction.
				return err
			}
			searching := "nothing (every trial trains the same configuration)"
			if names := spaceNames(spec); len(names) > 0 {
				searching = printable(strings.Join(names, ", "))
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created study %q: %d trials, sampler %s, searching %s\n", study.Name(), study.Budget(), samplerName(spec), searching)
			if p := spec.Space["flood_level"]; p.Estimate != nil {
				from := fmt.Sprintf("the irreducible loss of %g label noise", spec.Dataset.LabelNoise)
				if p.Center == search.CenterUnflooded {
					from = "the final training loss of an unflooded run"
				}
				fmt.Fprintf(out, "flood level estimated at %.4g from %s: searching [%.4g, %.4g], and a trial at the estimate is enqueued\n",
					*p.Estimate, from, *p.Low, *p.High)
			}
			fmt.Fprintf(out, "run it with: %s\n", studyCommand(cmd, "optimize", study.Name()))
			return nil
		},
	}
	cmd.Flags().StringVar(&specPath, "spec", "", "the study's spec, a YAML or JSON file (- reads standard input)")
	cmd.Flags().BoolVar(&noBaseline, "no-baseline", false, "do not enqueue the plain-training (b = 0) trial first")
	return cmd
}

// loadSpecFile reads and parses a spec file, or standard input for "-", up to
// the size limit of a spec; a parse error names the file.
func loadSpecFile(cmd *cobra.Command, path string) (*search.Spec, error) {
	var r io.Reader
	if path == "-" {
		r = cmd.InOrStdin()
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("read the spec: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, search.MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the spec %s: %w", path, err)
	}
	spec, err := search.ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, nil
}

func newStudyListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the studies with their progress and best values",
		Long: `list shows every study of the storage: its direction, how many trials count
toward its budget (trials that failed and were retried do not), how many are
complete and running, and the best value so far.`,
		Example: `  floodtune study list
  floodtune study list --storage postgres://floodtune@db/floodtune`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := openStorage(cmd, storage.MustExist())
			if err != nil {
				return err
			}
			defer st.Close()
			studies, err := st.Studies(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(studies) == 0 {
				fmt.Fprintf(out, "no studies in %s; create one with: floodtune study create NAME --spec FILE\n", printable(st.URL()))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDIRECTION\tTRIALS\tCOMPLETE\tRUNNING\tBEST")
			for _, s := range studies {
				counts, counted, err := st.Counts(ctx, s.ID)
				if err != nil {
					return err
				}
				best := math.NaN()
				switch t, err := st.Best(ctx, s.ID); {
				case err == nil:
					best = t.Value
				case !errors.Is(err, storage.ErrNotFound):
					return err
				}
				budget := "∞"
				if s.Budget > 0 {
					budget = strconv.Itoa(s.Budget)
				}
				fmt.Fprintf(tw, "%s\t%s\t%d/%s\t%d\t%d\t%s\n", printable(s.Name), printable(string(s.Direction)), counted, budget, counts[storage.Complete], counts[storage.Running], plot.FormatValue(best))
			}
			return tw.Flush()
		},
	}
}

func newStudyShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME",
		Short: "Show a study's progress, its best trial and the plain-training baseline",
		Long: `show prints how many trials are in each state against the budget, the best
trial (its value, flood level, parameters and test accuracy) and the
plain-training baseline trial (b = 0) beside it, with the difference: did
flooding help?

The value is the spec's objective on the validation set (val_acc, or
val_loss); the test accuracy is measured on the held-out test set, which the
search never looks at.`,
		Example: `  floodtune study show noise20`,
		Args:    exactArgs(1, "the study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			st, err := openStorage(cmd, storage.MustExist())
			if err != nil {
				return err
			}
			defer st.Close()
			study, err := findStudy(cmd.Context(), st, a[0])
			if err != nil {
				return err
			}
			return writeSummary(cmd.Context(), cmd.OutOrStdout(), st, study)
		},
	}
}

func newStudyDeleteCmd() *cobra.Command {
	var yes bool
	cmd := &cobra.Command{
		Use:   "delete NAME [--yes]",
		Short: "Delete a study and all its trials",
		Long: `delete removes a study and every one of its trials from the storage; it cannot
be undone. On a terminal it asks first; elsewhere (scripts, CI) it needs --yes.

Workers still optimising the study stop with an error.`,
		Example: `  floodtune study delete noise20
  floodtune study delete noise20 --yes --storage postgres://floodtune@db/floodtune`,
		Args: exactArgs(1, "the study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			st, err := openStorage(cmd, storage.MustExist())
			if err != nil {
				return err
			}
			defer st.Close()
			study, err := findStudy(ctx, st, a[0])
			if err != nil {
				return err
			}
			counts, _, err := st.Counts(ctx, study.ID)
			if err != nil {
				return err
			}
			n := 0
			for _, c := range counts {
				n += c
			}
			if !yes {
				in := cmd.InOrStdin()
				if !isTerminal(in) {
					return badInput(fmt.Errorf("not deleting study %q without --yes: there is no terminal to ask on", study.Name))
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "delete study %q and its %d trials from %s? This cannot be undone. [y/N] ", study.Name, n, printable(st.URL()))
				answer, _ := bufio.NewReader(in).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
					fmt.Fprintf(cmd.ErrOrStderr(), "kept study %q\n", study.Name)
					return nil
				}
			}
			if err := st.DeleteStudy(ctx, study.ID); err != nil {
				if errors.Is(err, storage.ErrNotFound) {
					return badInput(fmt.Errorf("no study named %q in %s (deleted meanwhile?)", study.Name, st.URL()))
				}
				return fmt.Errorf("delete study %q: %w", study.Name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deleted study %q and its %d trials\n", study.Name, n)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "delete without asking")
	return cmd
}

func newStudyEnqueueCmd() *cobra.Command {
	var params []string
	cmd := &cobra.Command{
		Use:   "enqueue NAME --param OPTION=VALUE...",
		Short: "Queue a trial with chosen values, to run before the sampled ones",
		Long: `enqueue adds a waiting trial that the next free worker runs before it samples
new ones: a flood level from the paper, a configuration you trust, a point
you want the sampler to learn from. Each --param sets one searched option
(numbers for float and int options, one of the choices for categorical ones),
and must lie in the study's space; options not given are sampled as usual.
The trial counts toward the study's budget.`,
		Example: `  floodtune study enqueue noise20 --param flood_level=0.8
  floodtune study enqueue noise20 --param flood_level=0.5 --param lr=0.05 --param optimizer=adam`,
		Args: exactArgs(1, "the study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			if len(params) == 0 {
				return badInput(errors.New("give at least one --param OPTION=VALUE, e.g. --param flood_level=0.5"))
			}
			st, study, spec, err := openStudy(cmd, a[0])
			if err != nil {
				return err
			}
			defer st.Close()
			values, err := parseParams(spec, study.Name, params)
			if err != nil {
				return badInput(err)
			}
			handle, err := search.Load(ctx, st, study.Name)
			if err != nil {
				return err
			}
			t, err := handle.Enqueue(ctx, values, nil)
			if errors.Is(err, storage.ErrBudgetExhausted) {
				return fmt.Errorf("%w; raise the budget by creating a new study", err)
			} else if err != nil {
				return err
			}
			rest := ""
			if len(values) < len(spec.Space) {
				rest = "; the other searched options will be sampled"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "enqueued trial %d of study %q with %s%s\n", t.Number, study.Name, printable(plot.FormatParams(values, " ")), rest)
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&params, "param", nil, "OPTION=VALUE: a searched option's value (repeat for several)")
	return cmd
}

// parseParams parses --param OPTION=VALUE flags against the study's space:
// numbers for float and int options, a choice for categorical ones.
func parseParams(spec *search.Spec, study string, flags []string) (map[string]any, error) {
	values := map[string]any{}
	for _, f := range flags {
		name, raw, ok := strings.Cut(f, "=")
		name, raw = strings.TrimSpace(name), strings.TrimSpace(raw)
		if !ok || name == "" {
			return nil, fmt.Errorf("--param %q: want OPTION=VALUE, e.g. flood_level=0.5", f)
		}
		if _, dup := values[name]; dup {
			return nil, fmt.Errorf("--param %s is given twice", name)
		}
		if _, ok := spec.Space[name]; !ok {
			searched := "none"
			if names := spaceNames(spec); len(names) > 0 {
				searched = strings.Join(names, ", ")
			}
			return nil, fmt.Errorf("--param %s: %s is not searched in study %q (searched: %s)", name, name, study, searched)
		}
		v, err := spec.ParseValue(name, raw)
		if err != nil {
			return nil, fmt.Errorf("--param %w", err)
		}
		values[name] = v
	}
	return values, nil
}
