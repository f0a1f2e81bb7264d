package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/floodtune/floodtune/plot"
	"math"
	"strconv"
	"time"

	"github.com/floodtune/floodtune/objective"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/spf13/cobra"
)

func newTrialCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "trial",
		Short: "Work with one trial of a study",
		Long: `trial works with one trial of a study, named by the study and the trial's
number (floodtune study trials lists them).`,
		Example: `  floodtune trial rerun noise20 7`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return badInput(fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), subcommands(cmd)))
		},
	}
	cmd.AddCommand(newTrialRerunCmd())
	return cmd
}

// rerunOutput is what trial rerun --json prints.
type rerunOutput struct {
	Study     string         `json:"study"`
	Number    int            `json:"number"`
	State     storage.State  `json:"state"`
	Objective string         `json:"objective"`
	Seed      int64          `json:"seed"`
	Params    map[string]any `json:"params"`
	Stored    *float64       `json:"stored"`
	Rerun     *float64       `json:"rerun"`
	Identical bool           `json:"identical"`
	TestAcc   *float64       `json:"test_acc"`
	BLAS      string         `json:"blas"`
}

func newTrialRerunCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "rerun NAME NUMBER",
		Short: "Train a trial's configuration again, with its seed, and compare the values",
		Long: `rerun trains trial NUMBER of study NAME again in this process: the study's
spec with the trial's parameters, the trial's recorded seed (initialisation
and batch order) and the study's data split, on one BLAS thread, as the
search ran it. Nothing is stored.

It prints the stored value and the rerun's (val_acc, or val_loss when the
spec's objective is val_loss) and whether they are equal bit for bit: they
should be, on the same BLAS build and architecture. A pruned trial stopped
early, so its rerun, which trains every epoch, differs.`,
		Example: `  floodtune trial rerun noise20 7
  floodtune trial rerun noise20 7 --json`,
		Args: exactArgs(2, "the study's name and the trial's number"),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			number, err := strconv.Atoi(a[1])
			if err != nil || number < 0 {
				return badInput(fmt.Errorf("trial number: want a whole number ≥ 0, got %q", a[1]))
			}
			st, study, spec, err := openStudy(cmd, a[0])
			if err != nil {
				return err
			}
			defer st.Close()
			t, err := st.TrialByNumber(ctx, study.ID, number)
			if errors.Is(err, storage.ErrNotFound) {
				return badInput(fmt.Errorf("study %q has no trial %d", study.Name, number))
			} else if err != nil {
				return err
			}
			seedAttr, ok := t.SystemAttrs[search.SeedAttr]
			if !ok {
				return badInput(fmt.Errorf("trial %d of study %q has not run yet (it is %s): no seed is recorded", number, study.Name, t.State))
			}
			seed, err := strconv.ParseInt(seedAttr, 10, 64)
			if err != nil {
				return fmt.Errorf("trial %d of study %q: the recorded seed %q is not a number", number, study.Name, seedAttr)
			}
			params, err := spec.TrialParams(t)
			if err != nil {
				return err
			}
			cfg, err := spec.Config(params)
			if err != nil {
				return fmt.Errorf("the configuration of trial %d of study %q: %w", number, study.Name, err)
			}
			cfg.Seed = seed
			objective.SetBLASThreads(1)
			data, err := spec.LoadData(ctx)
			if err != nil {
				return fmt.Errorf("load the dataset of study %q: %w", study.Name, err)
			}
			res, err := objective.Train(ctx, data, cfg, nil)
			if err != nil {
				return fmt.Errorf("rerun trial %d of study %q: %w", number, study.Name, err)
			}
			obj := objectiveName(spec)
			value := res.ValAcc
			if spec.Direction() == search.Minimize {
				value = res.ValLoss
			}
			identical := t.HasValue() && math.Float64bits(t.Value) == math.Float64bits(value)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				return enc.Encode(rerunOutput{
					Study: study.Name, Number: number, State: t.State, Objective: obj, Seed: seed, Params: params,
					Stored: finiteOrNil(t.Value), Rerun: finiteOrNil(value), Identical: identical,
					TestAcc: finiteOrNil(res.TestAcc), BLAS: objective.BLAS(),
				})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "trial %d of study %q (%s), seed %d", number, study.Name, t.State, seed)
			if len(params) > 0 {
				fmt.Fprintf(out, ", %s", printable(plot.FormatParams(params, " ")))
			}
			fmt.Fprintln(out)
			stored := "none"
			if t.HasValue() {
				stored = exactFloat(t.Value)
			}
			obj = printable(obj) // from here on, for people
			fmt.Fprintf(out, "stored %s: %s\n", obj, stored)
			fmt.Fprintf(out, "rerun  %s: %s (test acc %s, %s)\n", obj, exactFloat(value), plot.FormatValue(res.TestAcc), formatSeconds(time.Duration(res.Seconds*float64(time.Second))))
			switch {
			case identical:
				fmt.Fprintln(out, "identical bit for bit: yes")
			case !t.HasValue():
				fmt.Fprintf(out, "identical bit for bit: no stored value to compare (the trial is %s)\n", t.State)
			case t.State == storage.Pruned:
				fmt.Fprintln(out, "identical bit for bit: no (the trial was pruned, the rerun trained every epoch)")
			default:
				fmt.Fprintf(out, "identical bit for bit: no (%+g); the BLAS (%s) or the architecture may differ from the worker's\n", value-t.Value, objective.BLAS())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object with both values")
	return cmd
}
