package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/floodtune/floodtune/storage"
	"github.com/spf13/cobra"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke the bearer tokens of the HTTP API",
		Long: `A token lets a client of floodtune's HTTP API in: a person, a dashboard, a
worker on another machine. It is sent as "Authorization: Bearer TOKEN", and
its scope says what it may do:

  admin   everything
  read    read every study, its trials and the metrics
  worker  read one study (--study) and run its trials: ask, report,
          heartbeat, tell

Tokens live in the storage (--storage or FLOODTUNE_STORAGE; default
sqlite:floodtune.db). Only a SHA-256 hash of each token's secret is stored:
token create prints the token once, and nobody can show it again. A lost
token is revoked and replaced, never recovered. A worker token goes with its
study: study delete deletes it.`,
		Example: `  TOKEN=$(floodtune token create ci --scope admin)
  floodtune token create grafana --scope read
  floodtune token create noise20-workers --scope worker --study noise20
  floodtune token list
  floodtune token revoke ci`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return badInput(fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), subcommands(cmd)))
		},
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenListCmd(), newTokenRevokeCmd())
	return cmd
}

func newTokenCreateCmd() *cobra.Command {
	var scopeName, studyName string
	cmd := &cobra.Command{
		Use:   "create NAME --scope admin|read|worker [--study STUDY]",
		Short: "Create a token and print it, once",
		Long: `create stores a new token called NAME and prints the token, alone, on standard
output, so that a script can capture it; standard error says that it is
shown once. Keep it where secrets are kept: floodtune stores only its hash
and cannot show it again.

NAME says whose token it is (at most 100 printable characters); it is how
token list shows the token and token revoke finds it, and a revoked token
keeps its name. --scope is required:

  admin   everything
  read    read every study, its trials and the metrics
  worker  read the study named by --study and run its trials (ask, report,
          heartbeat, tell); only a worker token takes --study`,
		Example: `  TOKEN=$(floodtune token create ci --scope admin)
  floodtune token create grafana --scope read > grafana.token
  floodtune token create noise20-workers --scope worker --study noise20 --storage postgres://floodtune@db/floodtune`,
		Args: exactArgs(1, "the new token's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			ctx := cmd.Context()
			name := a[0]
			if err := storage.CheckTokenName(name); err != nil {
				return badInput(err)
			}
			if !cmd.Flags().Changed("scope") {
				return badInput(errors.New("--scope is required: admin (everything), read (read every study) or worker (run the trials of one --study)"))
			}
			scope, err := storage.ParseScope(scopeName)
			if err != nil {
				return badInput(fmt.Errorf("--scope %q: want admin, read or worker", scopeName))
			}
			withStudy := cmd.Flags().Changed("study")
			switch {
			case scope == storage.ScopeWorker && (!withStudy || studyName == ""):
				return badInput(errors.New("a worker token needs --study STUDY: it runs the trials of that study only"))
			case scope != storage.ScopeWorker && withStudy:
				article := "a"
				if scope == storage.ScopeAdmin {
					article = "an"
				}
				return badInput(fmt.Errorf("--study is for worker tokens only: %s %s token serves every study", article, scope))
			}
			var opts []storage.Option
			if scope == storage.ScopeWorker {
				opts = append(opts, storage.MustExist()) // its study must be there
			}
			st, err := openStorage(cmd, opts...)
			if err != nil {
				return err
			}
			defer st.Close()
			var studyID int64
			if scope == storage.ScopeWorker {
				study, err := findStudy(ctx, st, studyName)
				if err != nil {
					return err
				}
				studyID = study.ID
			}
			token, tok, err := st.CreateToken(ctx, name, scope, studyID)
			switch {
			case errors.Is(err, storage.ErrTokenExists):
				return badInput(fmt.Errorf("a token named %q already exists in %s (revoked tokens keep their names): choose another name (floodtune token list shows them)", name, st.URL()))
			case errors.Is(err, storage.ErrNotFound):
				return badInput(fmt.Errorf("no study named %q in %s (deleted meanwhile?)", studyName, st.URL()))
			case errors.Is(err, storage.ErrBadTokenInput):
				return badInput(err)
			case err != nil:
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			what := fmt.Sprintf("%s token %q", tok.Scope, tok.Name)
			if tok.StudyName != "" {
				what += fmt.Sprintf(" for study %q", tok.StudyName)
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "created %s; the token is shown this once and cannot be shown again: keep it now\n", what)
			return nil
		},
	}
	cmd.Flags().StringVar(&scopeName, "scope", "", "what the token may do: admin, read or worker (required)")
	cmd.Flags().StringVar(&studyName, "study", "", "the study a worker token serves (worker tokens only)")
	return cmd
}

func newTokenListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the tokens, revoked ones included",
		Long: `list shows every token of the storage, by name: its scope, the study of a
worker token, when it was created, when it was last used (recorded about
once a minute at most) and when it was revoked. It never shows a token
itself: floodtune does not have it.`,
		Example: `  floodtune token list
  floodtune token list --storage postgres://floodtune@db/floodtune`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := openStorage(cmd, storage.MustExist())
			if err != nil {
				return err
			}
			defer st.Close()
			toks, err := st.Tokens(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(toks) == 0 {
				fmt.Fprintf(out, "no tokens in %s; create one with: floodtune token create NAME --scope admin|read|worker\n", printable(st.URL()))
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSCOPE\tSTUDY\tCREATED\tLAST USED\tREVOKED")
			for _, tok := range toks {
				study := "-"
				if tok.StudyName != "" {
					study = printable(tok.StudyName)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", printable(tok.Name), printable(string(tok.Scope)), study,
					tokenTime(tok.CreatedAt, "-"), tokenTime(tok.LastUsedAt, "never"), tokenTime(tok.RevokedAt, "-"))
			}
			return tw.Flush()
		},
	}
}

// tokenTime shows a time of a token, or none when it is zero.
func tokenTime(t time.Time, none string) string {
	if t.IsZero() {
		return none
	}
	return t.Local().Format(time.RFC3339)
}

func newTokenRevokeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke NAME",
		Short: "Revoke a token: it lets nobody in from now on",
		Long: `revoke refuses the token called NAME from now on, at once, everywhere. A
revoked token cannot be restored: create another (under another name, since
a revoked token keeps its name and stays listed). Revoking a revoked token
changes nothing.`,
		Example: `  floodtune token revoke ci
  floodtune token revoke noise20-workers --storage postgres://floodtune@db/floodtune`,
		Args: exactArgs(1, "the token's name"),
		RunE: func(cmd *cobra.Command, a []string) error {
			name := a[0]
			if err := storage.CheckTokenName(name); err != nil {
				return badInput(err)
			}
			st, err := openStorage(cmd, storage.MustExist())
			if err != nil {
				return err
			}
			defer st.Close()
			err = st.RevokeToken(cmd.Context(), name)
			switch {
			case errors.Is(err, storage.ErrNotFound):
				return badInput(fmt.Errorf("no token named %q in %s (floodtune token list shows them)", name, st.URL()))
			case errors.Is(err, storage.ErrBadTokenInput):
				return badInput(err)
			case err != nil:
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked token %q: it is refused from now on\n", name)
			return nil
		},
	}
}
