package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/floodtune/floodtune/storage"
	"github.com/spf13/cobra"
)

// storageURL is the --storage flag's value, then FLOODTUNE_STORAGE, then the
// default.
func storageURL(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("storage"); f != nil && f.Changed {
		return f.Value.String()
	}
	if v := os.Getenv("FLOODTUNE_STORAGE"); v != "" {
		return v
	}
	return storage.DefaultURL
}

// openStorage opens the storage of the command line; a malformed URL is bad
// input.
func openStorage(cmd *cobra.Command, opts ...storage.Option) (*storage.Store, error) {
	st, err := storage.Open(cmd.Context(), storageURL(cmd), opts...)
	if errors.Is(err, storage.ErrBadURL) {
		return nil, badInput(err)
	}
	return st, err
}

func newMigrateCmd() *cobra.Command {
	var to int
	cmd := &cobra.Command{
		Use:   "migrate [up|down|status]",
		Short: "Apply, revert or list the storage's schema migrations",
		Long: `migrate manages the versioned schema of the storage (--storage or
FLOODTUNE_STORAGE; default sqlite:floodtune.db). Every other command migrates
up automatically, so this is for operators:

  up      apply every migration not yet applied (or up to --to N)
  down    revert the newest applied migration (or every one above --to N)
  status  list the migrations and when each was applied

Workers that start at once do not race: on PostgreSQL they take turns on an
advisory lock.`,
		Example: `  floodtune migrate status --storage postgres://floodtune@db/floodtune
  floodtune migrate down --to 1`,
		Args:      args(cobra.MatchAll(cobra.MaximumNArgs(1), cobra.OnlyValidArgs)),
		ValidArgs: []string{"up", "down", "status"},
		RunE: func(cmd *cobra.Command, args []string) error {
			action := "up"
			if len(args) == 1 {
				action = args[0]
			}
			if to < 0 {
				return badInput(fmt.Errorf("--to must be ≥ 0, got %d", to))
			}
			st, err := openStorage(cmd, storage.WithoutMigration())
			if err != nil {
				return err
			}
			defer st.Close()
			out := cmd.OutOrStdout()
			switch action {
			case "status":
				ms, err := st.Migrations(cmd.Context())
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
				for _, m := range ms {
					applied := "no"
					if m.Applied {
						applied = m.AppliedAt.Local().Format(time.RFC3339)
					}
					fmt.Fprintf(tw, "%03d\t%s\t%s\n", m.Version, m.Name, applied)
				}
				return tw.Flush()
			default:
				dir := storage.Up
				if action == "down" {
					dir = storage.Down
				}
				ran, err := st.Migrate(cmd.Context(), dir, to)
				for _, m := range ran {
					fmt.Fprintf(out, "%s %03d_%s\n", map[storage.MigrationDirection]string{storage.Up: "applied", storage.Down: "reverted"}[dir], m.Version, m.Name)
				}
				if err != nil {
					return err
				}
				if len(ran) == 0 {
					fmt.Fprintf(out, "nothing to %s: %s is %s\n", action, st.URL(), map[storage.MigrationDirection]string{storage.Up: "up to date", storage.Down: "at the bottom"}[dir])
				}
				return nil
			}
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "target version (0: all the way up, or one step down)")
	return cmd
}
