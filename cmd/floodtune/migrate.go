package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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

// openStorage opens the storage of the command line: one that outlives
// the command (no in-memory SQLite). A malformed URL is bad input, and so
// is a missing SQLite file for a command given storage.MustExist (one that
// only reads or needs a study).
func openStorage(cmd *cobra.Command, opts ...storage.Option) (*storage.Store, error) {
	st, err := storage.Open(cmd.Context(), storageURL(cmd), append([]storage.Option{storage.Persistent()}, opts...)...)
	switch {
	case errors.Is(err, storage.ErrBadURL):
		return nil, badInput(err)
	case errors.Is(err, storage.ErrNoStorage):
		hint := strings.Join(append([]string{"floodtune study create NAME --spec FILE"}, storageArgs(cmd)...), " ")
		return nil, badInput(fmt.Errorf("%w (create a study first: %s)", err, hint))
	}
	return st, err
}

func newMigrateCmd() *cobra.Command {
	var to int
	var yes bool
	cmd := &cobra.Command{
		Use:   "migrate [up|down|status]",
		Short: "Apply, revert or list the storage's schema migrations",
		Long: `migrate manages the versioned schema of the storage (--storage or
FLOODTUNE_STORAGE; default sqlite:floodtune.db):

  up      apply every migration not yet applied (or up to --to N)
  down    revert the newest applied migration (or every one above --to N)
  status  list the migrations and when each was applied

What each needs. up and down change the schema: on PostgreSQL they need a
role that may create tables in the schema (CREATE on it), and down one that
owns floodtune's tables. status only reads: SELECT on
floodtune_schema_migrations is enough. The other commands need no more than
an application role: USAGE on the schema, SELECT, INSERT, UPDATE and DELETE
on floodtune's tables (SELECT is enough on floodtune_schema_migrations) and
USAGE on the sequences. They read the schema's version first and change nothing when it
is current; when it is missing or older they migrate it up themselves (a
fresh SQLite file, or a database the user owns, needs no migrate), and when
their role may not, they stop (exit status 1) and say to run floodtune
migrate with a role that may create tables.

down destroys data: reverting 001_init drops floodtune's tables with every
study and trial in them. down says how many studies and trials it would
destroy and asks on a terminal; elsewhere (scripts, CI) it needs --yes, and
without it refuses with exit status 2. So does down --to N when it would
revert anything.

A schema that a newer floodtune migrated (its version table records a
version this one does not know) is refused by every command, migrate up and
down included, with exit status 1: upgrade floodtune. status lists the
versions it does not know, marked so, and exits with status 1 too.

Workers that start at once do not race: on PostgreSQL they take turns on an
advisory lock.`,
		Example: `  floodtune migrate status --storage postgres://floodtune@db/floodtune
  floodtune migrate up --storage postgres://owner@db/floodtune
  floodtune migrate down --to 1 --yes`,
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
			opts := []storage.Option{storage.WithoutMigration()}
			if action != "up" {
				// Only up may create a storage.
				opts = append(opts, storage.MustExist())
			}
			st, err := openStorage(cmd, opts...)
			if err != nil {
				return err
			}
			defer st.Close()
			if action == "status" {
				return migrateStatus(cmd, st)
			}
			dir := storage.Up
			if action == "down" {
				dir = storage.Down
			}
			return migrateRun(cmd, st, dir, to, yes)
		},
	}
	cmd.Flags().IntVar(&to, "to", 0, "target version (0: all the way up, or one step down)")
	cmd.Flags().BoolVarP(&yes, "yes", "y", false, "revert without asking (down)")
	return cmd
}

// migrateStatus lists the migrations, those of a newer floodtune too, and
// fails when there are such.
func migrateStatus(cmd *cobra.Command, st *storage.Store) error {
	ms, err := st.Migrations(cmd.Context())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	newer := false
	for _, m := range ms {
		applied := "no"
		if m.Applied {
			applied = m.AppliedAt.Local().Format(time.RFC3339)
		}
		if m.Unknown {
			applied += " (unknown to this floodtune: applied by a newer release)"
			newer = true
		}
		fmt.Fprintf(tw, "%03d\t%s\t%s\n", m.Version, m.Name, applied)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if newer {
		// The error says which versions, and what to do.
		if err := st.CheckSchema(cmd.Context()); err != nil {
			return err
		}
	}
	return nil
}

// migrateRun migrates up or down, asking first when down would revert
// anything.
func migrateRun(cmd *cobra.Command, st *storage.Store, dir storage.MigrationDirection, to int, yes bool) error {
	ctx := cmd.Context()
	todo, err := st.MigrationPlan(ctx, dir, to)
	if err != nil {
		return err // a newer schema among others
	}
	ms, err := st.Migrations(ctx)
	if err != nil {
		return err
	}
	known := 0
	for _, m := range ms {
		if !m.Unknown {
			known = max(known, m.Version)
		}
	}
	if to > known {
		return badInput(fmt.Errorf("--to %d: this floodtune knows schema versions 1 to %d", to, known))
	}
	if dir == storage.Down && len(todo) > 0 && !yes {
		ok, err := confirmDown(cmd, st, todo, to)
		if err != nil || !ok {
			return err
		}
	}
	ran, err := st.Migrate(ctx, dir, to)
	out := cmd.OutOrStdout()
	for _, m := range ran {
		fmt.Fprintf(out, "%s %03d_%s\n", map[storage.MigrationDirection]string{storage.Up: "applied", storage.Down: "reverted"}[dir], m.Version, m.Name)
	}
	if err != nil {
		return err
	}
	if len(ran) == 0 {
		action := map[storage.MigrationDirection]string{storage.Up: "up", storage.Down: "down"}[dir]
		fmt.Fprintf(out, "nothing to %s: %s is %s\n", action, printable(st.URL()), map[storage.MigrationDirection]string{storage.Up: "up to date", storage.Down: "at the bottom"}[dir])
	}
	return nil
}

// confirmDown says what reverting todo would destroy and asks on a
// terminal; without one it refuses, as bad input, saying how to confirm.
func confirmDown(cmd *cobra.Command, st *storage.Store, todo []storage.Migration, to int) (bool, error) {
	sums, err := st.Summaries(cmd.Context())
	if err != nil {
		return false, fmt.Errorf("count the studies and trials that migrate down would destroy: %w", err)
	}
	trials := 0
	for _, s := range sums {
		for _, n := range s.Trials {
			trials += n
		}
	}
	names := make([]string, len(todo))
	drops := false
	for i, m := range todo {
		names[i] = fmt.Sprintf("%03d_%s", m.Version, m.Name)
		drops = drops || m.Version == 1 // the migration that creates the tables
	}
	held := fmt.Sprintf("%s and %s", howMany(len(sums), "study", "studies"), howMany(trials, "trial", "trials"))
	what := fmt.Sprintf("it would drop floodtune's tables, destroying the %s of %s", held, printable(st.URL()))
	if !drops {
		what = fmt.Sprintf("it may destroy data of the %s of %s", held, printable(st.URL()))
	}
	reverting := strings.Join(names, ", ")
	in := cmd.InOrStdin()
	if !isTerminal(in) {
		return false, badInput(fmt.Errorf("not reverting %s without --yes: %s, and there is no terminal to ask on; to confirm, run %s",
			reverting, what, migrateCommand(cmd, "down", to, "--yes")))
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "revert %s? %s%s. This cannot be undone. [y/N] ", reverting, strings.ToUpper(what[:1]), what[1:])
	answer, _ := bufio.NewReader(in).ReadString('\n')
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		fmt.Fprintf(cmd.ErrOrStderr(), "reverted nothing: %s keeps its schema and its %s\n", printable(st.URL()), held)
		return false, nil
	}
	return true, nil
}

// howMany shows n with the singular or plural noun.
func howMany(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// migrateCommand is the command line that runs migrate sub again, with --to
// and the --storage flag if they were given (its password hidden).
func migrateCommand(cmd *cobra.Command, sub string, to int, extra ...string) string {
	parts := []string{"floodtune", "migrate", sub}
	if to > 0 {
		parts = append(parts, "--to", strconv.Itoa(to))
	}
	parts = append(append(parts, extra...), storageArgs(cmd)...)
	return strings.Join(parts, " ")
}
