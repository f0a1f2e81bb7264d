package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/floodtune/floodtune/plot"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/spf13/cobra"
)

// checkFormat makes an unknown --format bad input.
func checkFormat(format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	list := strings.Join(allowed[:len(allowed)-1], ", ") + " or " + allowed[len(allowed)-1]
	return badInput(fmt.Errorf("--format: want %s, got %q", list, format))
}

func newStudyTrialsCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "trials NAME [--format table|csv|json]",
		Short: "List a study's trials with their states, values and parameters",
		Long: `trials lists every trial of a study by number: its state (waiting, running,
complete, pruned or fail), its value (the spec's objective), the searched
options' values and the test accuracy.

--format csv writes number,state,value, one column per searched option
(sorted by name) and test_acc, for spreadsheets and pandas; an empty cell is
a value not (yet) known.

--format json writes an array of objects with number, state, value (null
when unknown), params (option → value), intermediate (epoch → value),
user_attrs (test_acc, train_loss, ascent_fraction, ...), system_attrs (seed,
baseline, ...), datetime_start and datetime_complete (RFC 3339, null when
unset), retry_of (the number of the trial this one retries, null for a first
run) and attempt (0 for a first run, n for its n-th retry), for jq and
scripts.`,
		Example: `  floodtune study trials noise20
  floodtune study trials noise20 --format csv > trials.csv
  floodtune study trials noise20 --format json | jq '.[] | select(.state == "complete") | .params.flood_level'`,
		Args: exactArgs(1, "the study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkFormat(format, "table", "csv", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, study, spec, err := openStudy(cmd, a[0])
			if err != nil {
				return err
			}
			defer st.Close()
			trials, err := st.Trials(ctx, study.ID)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				return writeTrialsJSON(out, spec, trials)
			case "csv":
				return writeTrialsCSV(out, spec, trials)
			}
			return writeTrialsTable(out, spec, trials)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table, csv or json")
	return cmd
}

func writeTrialsJSON(w io.Writer, spec *search.Spec, trials []*storage.Trial) error {
	numberOf := trialNumbers(trials)
	list := make([]trialJSON, 0, len(trials))
	for _, t := range trials {
		j, err := newTrialJSON(spec, t, numberOf)
		if err != nil {
			return err
		}
		list = append(list, j)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(list)
}

// paramColumns are the searched options, and any other parameter a trial
// has, sorted.
func paramColumns(spec *search.Spec, all [][]string) []string {
	seen := map[string]bool{}
	var names []string
	for _, name := range spaceNames(spec) {
		seen[name] = true
		names = append(names, name)
	}
	for _, list := range all {
		for _, name := range list {
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names
}

// trialRows returns the trials' external parameters and the parameter
// columns.
func trialRows(spec *search.Spec, trials []*storage.Trial) ([]map[string]any, []string, error) {
	params := make([]map[string]any, len(trials))
	var names [][]string
	for i, t := range trials {
		p, err := spec.TrialParams(t)
		if err != nil {
			return nil, nil, err
		}
		params[i] = p
		list := make([]string, 0, len(p))
		for name := range p {
			list = append(list, name)
		}
		names = append(names, list)
	}
	return params, paramColumns(spec, names), nil
}

func writeTrialsCSV(w io.Writer, spec *search.Spec, trials []*storage.Trial) error {
	params, cols, err := trialRows(spec, trials)
	if err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	head := append([]string{"number", "state", "value"}, cols...)
	if err := cw.Write(append(head, search.TestAccAttr)); err != nil {
		return err
	}
	for i, t := range trials {
		row := []string{strconv.Itoa(t.Number), string(t.State), exactFloat(t.Value)}
		for _, c := range cols {
			row = append(row, exactParam(params[i][c]))
		}
		acc, _ := search.AttrFloat(t, search.TestAccAttr)
		if err := cw.Write(append(row, exactFloat(acc))); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeTrialsTable(w io.Writer, spec *search.Spec, trials []*storage.Trial) error {
	if len(trials) == 0 {
		fmt.Fprintln(w, "no trials yet")
		return nil
	}
	params, cols, err := trialRows(spec, trials)
	if err != nil {
		return err
	}
	numberOf := trialNumbers(trials)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"NUMBER", "STATE", strings.ToUpper(printable(objectiveName(spec)))}
	for _, c := range cols {
		head = append(head, strings.ToUpper(printable(c)))
	}
	fmt.Fprintln(tw, strings.Join(append(head, "TEST_ACC", "NOTE"), "\t"))
	for i, t := range trials {
		row := []string{strconv.Itoa(t.Number), printable(string(t.State)), plot.FormatValue(t.Value)}
		for _, c := range cols {
			row = append(row, printable(plot.FormatParam(params[i][c])))
		}
		acc, _ := search.AttrFloat(t, search.TestAccAttr)
		row = append(row, plot.FormatValue(acc), trialNote(t, numberOf))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// trialNumbers maps the trials' ids to their numbers.
func trialNumbers(trials []*storage.Trial) map[int64]int {
	numberOf := make(map[int64]int, len(trials))
	for _, t := range trials {
		numberOf[t.ID] = t.Number
	}
	return numberOf
}

// trialNote says what else is worth knowing about a trial in a table. It
// names other trials by number, never by their storage id.
func trialNote(t *storage.Trial, numberOf map[int64]int) string {
	var notes []string
	if t.SystemAttrs[search.BaselineAttr] == "true" {
		notes = append(notes, "baseline")
	}
	related := func(what string, id int64) string {
		if n, ok := numberOf[id]; ok {
			return fmt.Sprintf("%s %d", what, n)
		}
		return what + " a trial not listed"
	}
	if t.RetryOf != 0 {
		notes = append(notes, related("retry of", t.RetryOf))
	}
	if t.RetriedBy != 0 {
		notes = append(notes, related("retried as", t.RetriedBy))
	}
	if r := t.SystemAttrs[search.ReasonAttr]; r != "" && t.State == storage.Fail {
		if len([]rune(r)) > 60 {
			r = string([]rune(r)[:57]) + "..."
		}
		notes = append(notes, oneLine(r))
	}
	return strings.Join(notes, "; ")
}

func newStudyBestCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "best NAME [--format table|json]",
		Short: "Show a study's best complete trial",
		Long: `best shows the complete trial with the best value (the highest val_acc, or
the lowest val_loss): its value, flood level, parameters, test accuracy,
seed and times. --format json prints it as one object of the shape study
trials --format json uses, for scripts:

  b=$(floodtune study best noise20 --format json | jq .params.flood_level)

It fails (status 1) while no trial is complete.`,
		Example: `  floodtune study best noise20
  floodtune study best noise20 --format json`,
		Args: exactArgs(1, "the study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := checkFormat(format, "table", "json"); err != nil {
				return err
			}
			ctx := cmd.Context()
			st, study, spec, err := openStudy(cmd, a[0])
			if err != nil {
				return err
			}
			defer st.Close()
			best, err := st.Best(ctx, study.ID)
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("study %q has no complete trial yet (run it with: %s)", study.Name, studyCommand(cmd, "optimize", study.Name))
			} else if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				numberOf := map[int64]int{}
				if best.RetryOf != 0 {
					of, err := st.Trial(ctx, best.RetryOf)
					if err != nil {
						return fmt.Errorf("the trial that trial %d retries: %w", best.Number, err)
					}
					numberOf[of.ID] = of.Number
				}
				j, err := newTrialJSON(spec, best, numberOf)
				if err != nil {
					return err
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(j)
			}
			return writeTrialDetail(out, spec, best)
		},
	}
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

// writeTrialDetail prints one trial, a field a line.
func writeTrialDetail(w io.Writer, spec *search.Spec, t *storage.Trial) error {
	params, err := spec.TrialParams(t)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "trial\t%d\n", t.Number)
	fmt.Fprintf(tw, "state\t%s\n", printable(string(t.State)))
	fmt.Fprintf(tw, "%s\t%s\n", printable(objectiveName(spec)), exactFloat(t.Value))
	if b, ok := floodLevel(spec, params); ok {
		fmt.Fprintf(tw, "flood level\t%s\n", exactFloat(b))
	}
	names := make([]string, 0, len(params))
	for name := range params {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(tw, "param %s\t%s\n", printable(name), printable(exactParam(params[name])))
	}
	for _, key := range []string{search.TestAccAttr, search.TestLossAttr, search.ValLossAttr, search.TrainLossAttr, search.AscentFractionAttr} {
		if v, ok := t.UserAttrs[key]; ok {
			fmt.Fprintf(tw, "%s\t%s\n", key, printable(v))
		}
	}
	if s := t.SystemAttrs[search.SeedAttr]; s != "" {
		fmt.Fprintf(tw, "seed\t%s\n", printable(s))
	}
	if t.SystemAttrs[search.BaselineAttr] == "true" {
		fmt.Fprintln(tw, "baseline\tyes (plain training)")
	}
	if s := rfc3339(t.StartedAt); s != nil {
		fmt.Fprintf(tw, "started\t%s\n", *s)
	}
	if s := rfc3339(t.CompletedAt); s != nil {
		fmt.Fprintf(tw, "completed\t%s (%s)\n", *s, t.CompletedAt.Sub(t.StartedAt).Round(time.Millisecond))
	}
	return tw.Flush()
}
