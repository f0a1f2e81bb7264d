package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/floodtune/floodtune/plot"
	"github.com/spf13/cobra"
)

func newStudyPlotCmd() *cobra.Command {
	var out, format string
	cmd := &cobra.Command{
		Use:   "plot NAME --out DIR [--format png,svg|html]",
		Short: "Draw a study's figures: accuracy against the flood level, history, learning curves",
		Long: `plot draws three figures of a study from its stored trials and writes them
into DIR (created if need be):

  accuracy-vs-flood-level  the validation and test accuracy of every complete
                           trial against its flood level b, the best trial
                           ringed and the plain-training baseline (b = 0)
                           boxed; against the trial number when the study
                           does not search flood_level
  history                  each complete trial's value by trial number, and
                           the best value so far as a step line
  learning-curves          the per-epoch validation values of the 5 best
                           trials, labelled with their flood levels

--format png,svg (the default) writes each figure as a PNG and an SVG file;
--format html writes one self-contained page, plots.html, with the three
figures inline and a table of the trials, to open in a browser or attach to
a report. Formats may be combined: --format png,html.

Trials that are not complete, and values that are NaN, are left out; a
study with no complete trial yet has nothing to draw, which is an error
(status 1). plot reads the storage only, so it can run while the study is
being optimised.`,
		Example: `  floodtune study plot noise20 --out plots
  floodtune study plot noise20 --out report --format html
  floodtune study plot noise20 --out plots --format svg --storage postgres://floodtune@db/floodtune`,
		Args: exactArgs(1, "the study's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			formats, err := plotFormats(format)
			if err != nil {
				return err
			}
			if out == "" {
				return badInput(errors.New("--out DIR is required: the directory to write the figures into"))
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
			d, err := plot.Prepare(plot.Study{
				Name:      study.Name,
				Direction: study.Direction,
				Objective: objectiveName(spec),
				Params:    spec.TrialParams,
			}, trials)
			if errors.Is(err, plot.ErrNoCompleteTrial) {
				return fmt.Errorf("%w; run it with: %s", err, studyCommand(cmd, "optimize", study.Name))
			} else if err != nil {
				return err
			}
			files, err := d.Write(out, formats...)
			for _, f := range files {
				fmt.Fprintln(cmd.OutOrStdout(), printable(f))
			}
			return err
		},
	}
	cmd.Flags().StringVarP(&out, "out", "o", "", "the directory to write the figures into (created if need be)")
	cmd.Flags().StringVar(&format, "format", "png,svg", "png, svg or html, or a comma-separated list of them")
	return cmd
}

// plotFormats reads --format: png, svg or html, or a list of them separated
// by commas; anything else is bad input.
func plotFormats(s string) ([]plot.Format, error) {
	var formats []plot.Format
	seen := map[plot.Format]bool{}
	for _, part := range strings.Split(s, ",") {
		f, err := plot.ParseFormat(part)
		if err != nil {
			return nil, badInput(fmt.Errorf("--format: want png, svg or html (or a comma-separated list), got %q", s))
		}
		if !seen[f] {
			seen[f] = true
			formats = append(formats, f)
		}
	}
	return formats, nil
}
