package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/floodtune/floodtune/objective"
	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "(devel)"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v = bi.Main.Version
		}
	}
	return v
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go version and the BLAS in use",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "floodtune %s\n%s %s/%s\nBLAS: %s\n", versionString(), runtime.Version(), runtime.GOOS, runtime.GOARCH, objective.BLAS())
			return nil
		},
	}
}
