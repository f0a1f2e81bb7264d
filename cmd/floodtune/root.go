package main

import (
	"io"

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
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return badInput(err) })
	root.PersistentFlags().String("storage", storage.DefaultURL, "where studies live: postgres://user@host/db, postgresql://..., or sqlite:PATH (env FLOODTUNE_STORAGE)")
	root.AddCommand(newTrainCmd(), newMigrateCmd(), newVersionCmd(), newStudyCmd(), newTrialCmd(), newServeCmd(), newDatasetCmd())
	return root
}
