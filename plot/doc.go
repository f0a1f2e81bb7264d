// Package plot draws the figures of a flood-level study from its stored
// trials, with gonum.org/v1/plot:
//
//   - accuracy-vs-flood-level: the validation and test accuracy of every
//     complete trial against its flood level b (against the trial number
//     when the study does not search flood_level), with the best trial and
//     the plain-training baseline (b = 0) marked;
//   - history: each complete trial's value by trial number, and the best
//     value so far as a step line;
//   - learning-curves: the per-epoch validation values (the trials'
//     intermediate values) of the five best trials, labelled with their
//     flood levels.
//
// Each figure is written as PNG and SVG, and the three together can be
// written as one self-contained HTML page with a table of the trials.
//
// The package reads storage.Trial values and nothing else of floodtune's:
// it does not know specs or samplers, so it can draw a study read from any
// storage, or trials built by hand. The main call:
//
//	d, err := plot.Prepare(plot.Study{Name: study.Name, Direction: study.Direction}, trials)
//	if err != nil {
//		return err // plot.ErrNoCompleteTrial while nothing has finished
//	}
//	files, err := d.Write("plots", plot.PNG, plot.SVG, plot.HTML)
package plot
