package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/floodtune/floodtune/storage"
	"github.com/spf13/cobra"
)

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "floodtune",
		Short: "Search the flooding level and the other hyperparameters of a training run",
		Long: `floodtune tunes the flooding level b of the flooding regularizer (Ishida et al.,
ICML 2020), which trains on |J − b| + b instead of the loss J: the optimizer
descends while the minibatch loss is above b and ascends below it, so the
training loss floats around b instead of going to zero. The right b depends on
the data (it grows with label noise), so it has to be searched for, together
with the learning rate and the rest.

Start with one training run:

  floodtune train --dataset mnist --label-noise 0.2 --flood flood --flood-level 0.8 \
    --hidden 500,500 --optimizer momentum --lr 0.1 --epochs 10`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// An unknown command is bad input (status 2), as an unknown flag
		// is; cobra's own complaint would exit with 1.
		Args:                       cobra.ArbitraryArgs,
		SuggestionsMinimumDistance: 2,
		RunE: func(cmd *cobra.Command, a []string) error {
			if len(a) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", a[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(a[0]); len(s) > 0 {
				msg += " (did you mean " + strings.Join(s, " or ") + "?)"
			}
			return badInput(fmt.Errorf("%s; floodtune --help lists the commands", msg))
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return badInput(err) })
	root.PersistentFlags().String("storage", storage.DefaultURL, "where studies live: postgres://user@host/db, postgresql://..., or sqlite:PATH (env FLOODTUNE_STORAGE)")
	root.AddCommand(newTrainCmd(), newMigrateCmd(), newVersionCmd(), newStudyCmd(), newTrialCmd(), newServeCmd(), newDatasetCmd(), newTokenCmd())
	return root
}
