package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/floodtune/floodtune/objective"
	"github.com/spf13/cobra"
)

func newDatasetCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataset",
		Short: "Work with the data of a study",
		Long: `dataset gives other programs the data a study trains on: the same rows, the
same train/validation split and the same noisy labels.`,
		Example: `  floodtune dataset export --spec study.yaml --out data/study`,
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return badInput(fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), subcommands(cmd)))
		},
	}
	cmd.AddCommand(newDatasetExportCmd())
	return cmd
}

func newDatasetExportCmd() *cobra.Command {
	var specPath, outDir string
	cmd := &cobra.Command{
		Use:   "export --spec FILE --out DIR",
		Short: "Write a study's train, validation and test splits as raw arrays",
		Long: `export builds the dataset of a study spec exactly as study optimize does (the
split and the label noise drawn with the spec's search.seed) and writes it to
DIR, so that another framework trains on the very same data:

  <split>_x.f32  little-endian float32, n × features, row-major
  <split>_y.i32  little-endian int32 labels in [0, classes)

for the splits train, val and test (the training and validation labels with
their noise, the test labels clean), and meta.json: the dataset's name,
features, classes, n and the number of noisy labels of each split, the spec's
dataset section and the seed. meta.json is written last: its presence means
the export is complete. Files of an earlier export in DIR are replaced.

In Python: np.fromfile(DIR + "/train_x.f32", "<f4").reshape(n, features).`,
		Example: `  floodtune dataset export --spec examples/mnist-noise20.yaml --out out/mnist-noise20
  python3 -c 'import numpy as np; print(np.fromfile("out/mnist-noise20/train_y.i32", "<i4")[:10])'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDatasetExport(cmd, specPath, outDir) },
	}
	cmd.Flags().StringVar(&specPath, "spec", "", "the study spec (YAML or JSON; - reads standard input)")
	cmd.Flags().StringVar(&outDir, "out", "", "the directory to write the files to (created if needed)")
	return cmd
}

func runDatasetExport(cmd *cobra.Command, specPath, outDir string) error {
	if specPath == "" {
		return badInput(errors.New("--spec FILE is required: the study spec whose data to export"))
	}
	if outDir == "" {
		return badInput(errors.New("--out DIR is required: the directory to write the files to"))
	}
	spec, err := loadSpecFile(cmd, specPath)
	if err != nil {
		return badInput(err)
	}
	if err := checkWritableDir(outDir); err != nil {
		return badInput(err)
	}
	data, err := spec.LoadData(cmd.Context()) // the split of study optimize
	if err != nil {
		if errors.Is(err, objective.ErrDatasetNotFound) {
			return badInput(err)
		}
		return err
	}
	if err := data.Export(outDir, objective.ExportSource{Dataset: spec.Dataset, Seed: spec.Search.Seed}); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "exported %s to %s: %d train / %d validation / %d test rows of %d features, %d classes; %d train and %d validation labels noisy; seed %d\n",
		printable(data.Name), printable(outDir), data.Train.N, data.Val.N, data.Test.N, data.Features, data.Classes, data.NoisyTrain, data.NoisyVal, spec.Search.Seed)
	return nil
}

// checkWritableDir makes dir if needed and checks that files can be
// created in it, before any data is loaded.
func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--out: cannot make the directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".floodtune-probe-*")
	if err != nil {
		return fmt.Errorf("--out: cannot write to %s: %w", filepath.Clean(dir), err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
