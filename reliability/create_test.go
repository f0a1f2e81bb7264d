package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// A study and the trials it starts with (the plain-training baseline) are
// written at once: when the storage refuses the trial (here a trigger
// stands in for a full disk), no study is left without its baseline.
func TestAStudyIsCreatedWithItsBaselineOrNotAtAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.Schema(t)
	dir := t.TempDir()
	specFile := filepath.Join(dir, "s.yaml")
	if err := os.WriteFile(specFile, fmt.Appendf(nil, spec, 4), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binary, append(args, "--storage", url)...).CombinedOutput()
		return string(out), err
	}
	// The schema first, then a trigger that refuses every new trial.
	if out, err := run("migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pgtest.Exec(t, url,
		`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$`,
		`CREATE TRIGGER full_disk BEFORE INSERT ON trials FOR EACH ROW EXECUTE FUNCTION refuse()`)
	out, err := run("study", "create", "s", "--spec", specFile)
	if err == nil || !strings.Contains(out, "No space left on device") {
		t.Fatalf("study create on a full disk: %v\n%s", err, out)
	}
	var studies int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM studies`).Scan(&studies); err != nil {
		t.Fatal(err)
	}
	if studies != 0 {
		t.Fatalf("%d studies left behind by a create that failed", studies)
	}
	pgtest.Exec(t, url, `DROP TRIGGER full_disk ON trials`)
	if out, err := run("study", "create", "s", "--spec", specFile); err != nil {
		t.Fatalf("study create once the disk has room: %v\n%s", err, out)
	}
	out, err = run("study", "trials", "s", "--format", "csv")
	if err != nil || !strings.Contains(out, "waiting") {
		t.Fatalf("the created study's trials: %v\n%s", err, out)
	}
}
