package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/floodtune/floodtune/plot"

	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
	"github.com/spf13/cobra"
)

// findStudy returns the study called name; an unknown name is bad input.
func findStudy(ctx context.Context, st *storage.Store, name string) (*storage.Study, error) {
	study, err := st.StudyByName(ctx, name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, badInput(fmt.Errorf("no study named %q in %s (floodtune study list shows them)", name, st.URL()))
	}
	return study, err
}

// studySpec returns the spec stored with a study.
func studySpec(study *storage.Study) (*search.Spec, error) {
	return search.LoadSpec(study)
}

// objectiveName, samplerName and prunerName are the spec's, their
// defaults spelt out by search.
func objectiveName(spec *search.Spec) string { return string(spec.ObjectiveName()) }
func samplerName(spec *search.Spec) string   { return string(spec.SamplerName()) }
func prunerName(spec *search.Spec) string    { return string(spec.PrunerName()) }

// spaceNames returns the searched options, sorted.
func spaceNames(spec *search.Spec) []string {
	names := make([]string, 0, len(spec.Space))
	for name := range spec.Space {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// floodLevel returns the flood level a trial trains with: its parameter,
// or the spec's fixed level.
func floodLevel(spec *search.Spec, params map[string]any) (float64, bool) {
	cfg, err := spec.Config(params)
	if err != nil {
		return math.NaN(), false
	}
	return cfg.FloodLevel, true
}

// trialJSON is a trial as `study trials --format json` and `study best
// --format json` print it.
type trialJSON struct {
	Number           int                 `json:"number"`
	State            storage.State       `json:"state"`
	Value            *float64            `json:"value"`
	Params           map[string]any      `json:"params"`
	Intermediate     map[string]*float64 `json:"intermediate"`
	UserAttrs        map[string]string   `json:"user_attrs"`
	SystemAttrs      map[string]string   `json:"system_attrs"`
	DatetimeStart    *string             `json:"datetime_start"`
	DatetimeComplete *string             `json:"datetime_complete"`
	// RetryOf is the number of the trial this one retries (null for a
	// first run); Attempt is 0 for a first run and n for its n-th retry.
	RetryOf *int `json:"retry_of"`
	Attempt int  `json:"attempt"`
}

// newTrialJSON returns trial t of a study; numberOf maps the ids of the
// study's trials to their numbers, for the trial t retries.
func newTrialJSON(spec *search.Spec, t *storage.Trial, numberOf map[int64]int) (trialJSON, error) {
	params, err := spec.TrialParams(t)
	if err != nil {
		return trialJSON{}, err
	}
	var retryOf *int
	if t.RetryOf != 0 {
		n, ok := numberOf[t.RetryOf]
		if !ok {
			return trialJSON{}, fmt.Errorf("trial %d retries the trial of id %d, which is not among the study's trials", t.Number, t.RetryOf)
		}
		retryOf = &n
	}
	for name, v := range params {
		if f, ok := v.(float64); ok {
			params[name] = finiteOrNil(f)
		}
	}
	inter := make(map[string]*float64, len(t.Intermediate))
	for step, v := range t.Intermediate {
		inter[strconv.Itoa(step)] = finiteOrNil(v)
	}
	return trialJSON{
		Number:           t.Number,
		State:            t.State,
		Value:            finiteOrNil(t.Value),
		Params:           params,
		Intermediate:     inter,
		UserAttrs:        nonNil(t.UserAttrs),
		SystemAttrs:      nonNil(t.SystemAttrs),
		DatetimeStart:    rfc3339(t.StartedAt),
		DatetimeComplete: rfc3339(t.CompletedAt),
		RetryOf:          retryOf,
		Attempt:          t.Attempt,
	}, nil
}

// finiteOrNil is v, or nil (JSON null) when v is NaN or infinite.
func finiteOrNil(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func rfc3339(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

// exactParam shows a parameter's value in full (CSV).
func exactParam(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case float64:
		return exactFloat(x)
	}
	return fmt.Sprint(v)
}

// exactFloat is the shortest text that reads back as v; empty for NaN.
func exactFloat(v float64) string {
	if math.IsNaN(v) {
		return ""
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// writeSummary prints what `study show` shows: the trials by state, the
// best trial and, beside it, the plain-training baseline.
func writeSummary(ctx context.Context, w io.Writer, st *storage.Store, study *storage.Study) error {
	spec, err := studySpec(study)
	if err != nil {
		return err
	}
	trials, err := st.Trials(ctx, study.ID)
	if err != nil {
		return err
	}
	counts, counted, err := st.Counts(ctx, study.ID)
	if err != nil {
		return err
	}
	best, err := st.Best(ctx, study.ID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	obj := printable(objectiveName(spec))
	fmt.Fprintf(w, "study %q: %s %s, sampler %s, pruner %s, seed %d, created %s\n",
		study.Name, printable(string(study.Direction)), obj, printable(samplerName(spec)), printable(prunerName(spec)), study.Seed, study.CreatedAt.Local().Format(time.RFC3339))
	if names := spaceNames(spec); len(names) > 0 {
		fmt.Fprintf(w, "searching: %s\n", printable(strings.Join(names, ", ")))
	}
	budget := "no limit"
	if study.Budget > 0 {
		budget = strconv.Itoa(study.Budget)
	}
	fmt.Fprintf(w, "trials: %d of budget %s counted; %d complete, %d pruned, %d fail, %d running, %d waiting\n",
		counted, budget, counts[storage.Complete], counts[storage.Pruned], counts[storage.Fail], counts[storage.Running], counts[storage.Waiting])
	if err := writeTraining(ctx, w, st, study, trials); err != nil {
		return err
	}

	if best == nil {
		fmt.Fprintln(w, "best: no complete trial yet")
	} else {
		params, err := spec.TrialParams(best)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "best: trial %d, %s %s", best.Number, obj, plot.FormatValue(best.Value))
		if b, ok := floodLevel(spec, params); ok {
			fmt.Fprintf(w, ", flood level %s", plot.FormatParam(b))
		}
		if acc, ok := chosenTestAcc(spec, best); ok {
			fmt.Fprintf(w, ", test acc %s", plot.FormatValue(acc))
		}
		fmt.Fprintln(w)
		if len(params) > 0 {
			fmt.Fprintf(w, "  params: %s\n", printable(plot.FormatParams(params, ", ")))
		}
	}

	base := search.FindBaseline(trials)
	switch {
	case base == nil:
		fmt.Fprintln(w, "baseline: none (the study was created without the plain-training trial)")
		return nil
	case base.State != storage.Complete || !base.HasValue():
		fmt.Fprintf(w, "baseline: trial %d (%s) is %s\n", base.Number, baselineKind(spec, base), printable(string(base.State)))
		return nil
	}
	fmt.Fprintf(w, "baseline: trial %d (%s), %s %s", base.Number, baselineKind(spec, base), obj, plot.FormatValue(base.Value))
	baseAcc, baseHasAcc := chosenTestAcc(spec, base)
	if baseHasAcc {
		fmt.Fprintf(w, ", test acc %s", plot.FormatValue(baseAcc))
	}
	fmt.Fprintln(w)
	// The other plain baseline, last: after the verdict against this one.
	defer writeEarlyStopping(w, spec, base, best, obj)
	if best == nil {
		return nil
	}
	if best.ID == base.ID {
		fmt.Fprintln(w, "flooding: no flooded trial has beaten plain training yet (the baseline is the best trial)")
		return nil
	}
	gain := best.Value - base.Value
	verdict := "helped"
	if (study.Direction == storage.Maximize && gain <= 0) || (study.Direction == storage.Minimize && gain >= 0) {
		verdict = "did not help"
	}
	fmt.Fprintf(w, "flooding %s: the best trial's %s is %+.4f against the baseline", verdict, obj, gain)
	if acc, ok := chosenTestAcc(spec, best); ok && baseHasAcc {
		fmt.Fprintf(w, " (test acc %+.4f)", acc-baseAcc)
	}
	fmt.Fprintln(w)
	return nil
}

// chosenTestAcc is the test accuracy of the model a trial stands for: the
// final one, or the one at its best epoch when the study values trials by
// their best epoch.
func chosenTestAcc(spec *search.Spec, t *storage.Trial) (float64, bool) {
	if spec.Search.EpochValue == search.EpochBest {
		return search.AttrFloat(t, search.BestTestAccAttr)
	}
	return search.AttrFloat(t, search.TestAccAttr)
}

// writeEarlyStopping answers "did flooding help?" against the other plain
// baseline: plain training stopped at its best validation epoch, which a
// sceptical reader asks about first. It says nothing when the baseline did
// not record its best epoch's test accuracy (a study run by an older
// floodtune, or an external trainer).
func writeEarlyStopping(w io.Writer, spec *search.Spec, base, best *storage.Trial, obj string) {
	epoch, okEpoch := search.AttrFloat(base, search.BestEpochAttr)
	acc, okAcc := search.AttrFloat(base, search.BestTestAccAttr)
	val, okVal := search.AttrFloat(base, search.BestValAccAttr)
	if spec.Direction() == search.Minimize {
		val, okVal = search.AttrFloat(base, search.BestValLossAttr)
	}
	if !okEpoch || !okAcc || !okVal {
		return
	}
	epochs, _ := search.AttrFloat(base, search.EpochsAttr)
	fmt.Fprintf(w, "early stopping: the baseline at its best epoch (%d of %d), %s %s, test acc %s\n",
		int(epoch), int(epochs), obj, plot.FormatValue(val), plot.FormatValue(acc))
	if best == nil || best.ID == base.ID {
		return
	}
	bestAcc, ok := chosenTestAcc(spec, best)
	if !ok {
		return
	}
	gain := bestAcc - acc
	verdict := "beats"
	if gain <= 0 {
		verdict = "does not beat"
	}
	fmt.Fprintf(w, "flooding %s early stopping: the best trial's test acc is %+.4f against the baseline at its best epoch\n", verdict, gain)
}

// baselineKind describes the baseline trial: plain training, unless the
// spec fixes a flood level that the study does not search.
func baselineKind(spec *search.Spec, base *storage.Trial) string {
	params, err := spec.TrialParams(base)
	if err != nil {
		return "baseline"
	}
	if b, ok := floodLevel(spec, params); ok && b != 0 {
		return "baseline at the spec's fixed flood level b = " + plot.FormatParam(b)
	}
	return "plain training, b = 0"
}

// formatSeconds shows a duration as the log lines do: 12.3s, or 45ms.
func formatSeconds(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Millisecond).String()
}

// printable returns s as a terminal may show it: every rune that is not
// printable (unicode.IsPrint: the C0 and C1 control characters, escape
// sequences' ESC among them, the bidirectional overrides and isolates
// U+202A–U+202E and U+2066–U+2069, the line and paragraph separators
// U+2028 and U+2029, zero-width and other format characters, spaces other
// than ' ') is replaced by its Go escape (\x1b, \u202e, \u2028), and every
// byte that is not UTF-8 by \xff, as %q shows them, but without quotes and
// with quotes and backslashes left as they are.
//
// It is the one helper for what floodtune writes for people: every line
// of a table, a log, a progress report or an error passes what the user or
// the storage supplied (study names, paths, URLs, parameters, a driver's
// error) through it, or quotes it with %q, which escapes by the same rule.
// JSON and CSV output is left exact: it is for programs.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

// shellWord quotes s for a POSIX shell when it needs it. A word with
// characters that printable would escape is written $'...' (bash, zsh,
// ksh, POSIX.1-2024), their bytes as \xHH, so that the line a person copies
// from the terminal holds no raw control or bidirectional character and
// still names s exactly.
func shellWord(s string) string {
	if s != "" && safeShell.MatchString(s) {
		return s
	}
	if printable(s) == s {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r):
			for _, c := range []byte(s[i : i+size]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		case r == '\\' || r == '\'':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('\'')
	return b.String()
}

var safeShell = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// studyCommand is the command line that runs a subcommand on a study again,
// with the --storage flag if one was given (its password hidden).
// storageArgs repeats the command line's --storage for a command it
// suggests, its password redacted; nothing when the flag was not given.
func storageArgs(cmd *cobra.Command) []string {
	f := cmd.Flags().Lookup("storage")
	if f == nil || !f.Changed {
		return nil
	}
	return []string{"--storage", shellWord(storage.Redact(f.Value.String()))}
}

func studyCommand(cmd *cobra.Command, sub, name string, extra ...string) string {
	parts := append([]string{"floodtune", "study", sub, shellWord(name)}, storageArgs(cmd)...)
	for _, e := range extra {
		parts = append(parts, shellWord(e))
	}
	return strings.Join(parts, " ")
}

// openStudy opens the command line's storage and finds the study name and
// its spec; the caller closes the store.
func openStudy(cmd *cobra.Command, name string) (*storage.Store, *storage.Study, *search.Spec, error) {
	st, err := openStorage(cmd, storage.MustExist())
	if err != nil {
		return nil, nil, nil, err
	}
	study, err := findStudy(cmd.Context(), st, name)
	if err == nil {
		var spec *search.Spec
		if spec, err = studySpec(study); err == nil {
			return st, study, spec, nil
		}
	}
	st.Close()
	return nil, nil, nil, err
}

// writeTraining says how much training the study's trials did against the
// epochs their runs count: the epochs they started from stored plain
// epochs instead of training (search.fork) and the runs early stopping
// ended, and the checkpoints the study holds. It says nothing for trials
// that do not record it (an external trainer's, or an older floodtune's).
func writeTraining(ctx context.Context, w io.Writer, st *storage.Store, study *storage.Study, trials []*storage.Trial) error {
	var run, trained, forked, stopped int
	for _, t := range trials {
		e, ok := search.AttrFloat(t, search.EpochsAttr)
		tr, ok2 := search.AttrFloat(t, search.TrainedEpochsAttr)
		if !ok || !ok2 {
			continue
		}
		run, trained = run+int(e), trained+int(tr)
		if _, ok := t.UserAttrs[search.ForkedFromEpochAttr]; ok {
			forked++
		}
		if _, ok := t.UserAttrs[search.StoppedAtEpochAttr]; ok {
			stopped++
		}
	}
	if run == 0 {
		return nil
	}
	fmt.Fprintf(w, "training: %d epochs trained of the %d the runs count; %d trials started from stored plain epochs, %d stopped early",
		trained, run, forked, stopped)
	n, bytes, err := st.CheckpointUsage(ctx, study.ID)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(w, "; %d checkpoints stored (%.1f MB)", n, float64(bytes)/(1<<20))
	}
	fmt.Fprintln(w)
	return nil
}
