package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// Through a PgBouncer in transaction mode with a pool of
// pgtest.BouncerPoolSize (2) server connections, three worker processes
// share them: the study is created (and its database migrated) through
// PgBouncer too, and the budget is spent exactly. Two workers have the URL
// setting; the third has the plain URL and finds the pooler by itself.
func TestThreeWorkersShareTwoServerConnectionsThroughPgBouncer(t *testing.T) {
	t.Parallel()
	const budget = 9
	via, _ := pgtest.Bouncer(t)
	e := newEnvOf(t, via+"&pgbouncer=transaction", fmt.Sprintf(spec, budget))
	ws := []*worker{
		e.start("worker A"),
		e.start("worker B"),
		e.launch(exec.Command(binary), via, "s", "worker C (plain URL)"),
	}
	for _, w := range ws {
		if err := w.wait(t, 4*time.Minute); err != nil {
			t.Errorf("%s: %v\n%s", w.name, err, w.out.String())
		}
		if s := w.out.String(); strings.Contains(s, "prepared statement") || strings.Contains(s, "panic") {
			t.Errorf("%s reported: %s", w.name, s)
		}
	}
	e.checkStudy(budget)
	perWorker := map[string]int{}
	for _, tr := range e.trials() {
		perWorker[tr.Worker]++
		if tr.State != storage.Complete {
			t.Errorf("trial %d is %s (%s)", tr.Number, tr.State, tr.SystemAttrs[storage.FailReasonAttr])
		}
	}
	t.Logf("trials per worker: %v", perWorker)
}

// With pgbouncer=session in front of transaction pooling (what the plain
// URL was before floodtune looked for itself), workers that prepare
// statements on shared server connections stop with an error that says
// what to add to the URL; none waits for ever.
func TestAWrongPgBouncerSettingStopsWithWhatToAddAndNeverHangs(t *testing.T) {
	t.Parallel()
	const budget = 6
	via, _ := pgtest.Bouncer(t)
	e := newEnvOf(t, via+"&pgbouncer=transaction", fmt.Sprintf(spec, budget))
	var ws []*worker
	for _, name := range []string{"worker A", "worker B", "worker C"} {
		ws = append(ws, e.launch(exec.Command(binary), via+"&pgbouncer=session", "s", name))
	}
	failed := 0
	for _, w := range ws {
		err := w.wait(t, 2*time.Minute) // a hang fails the test here
		if err == nil {
			continue
		}
		failed++
		if out := w.out.String(); !strings.Contains(out, "add pgbouncer=transaction to the storage URL") {
			t.Errorf("%s failed (%v) without saying what to add to the URL:\n%s", w.name, err, out)
		} else {
			t.Logf("%s: %v:\n%s", w.name, err, lastLines(out, 3))
		}
	}
	if failed == 0 {
		t.Errorf("three workers prepared statements on two shared server connections and none failed: is PgBouncer in transaction mode?")
	}
}

// The hang: a session-level advisory lock on the migration key,
// left behind on a pooled server connection after its client went away,
// made a later migration directly against PostgreSQL wait for ever without
// a word. Now the migration gives up after DefaultMigrationLockWait and
// names the session that holds the lock.
func TestAMigrationLockLeftOnAPooledConnectionIsNamedNotWaitedFor(t *testing.T) {
	t.Parallel()
	via, direct := pgtest.Bouncer(t)
	// A client of PgBouncer takes the lock as floodtune once did and goes.
	cfg, err := pgx.ParseConfig(via + "&application_name=old-floodtune")
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	old, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := old.QueryRow(t.Context(), "SELECT pg_backend_pid() FROM (SELECT pg_advisory_lock($1)) x", storage.MigrationLockKey).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), storage.DefaultMigrationLockWait+time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "migrate", "up", "--storage", direct).CombinedOutput()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("floodtune migrate was still waiting after %v:\n%s", took, out)
	}
	if err == nil {
		t.Fatalf("floodtune migrate succeeded while a pooled server connection held the migration lock:\n%s", out)
	}
	t.Logf("floodtune migrate exited after %v (%v):\n%s", took.Round(time.Millisecond), err, out)
	for _, want := range []string{"the migration lock", fmt.Sprintf("pid %d", pid), "pg_terminate_backend"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("floodtune migrate did not say %q", want)
		}
	}
	if took < storage.DefaultMigrationLockWait {
		t.Errorf("floodtune migrate gave up after %v, before the wait of %v", took, storage.DefaultMigrationLockWait)
	}
	// Once that server connection is gone, the migration goes through.
	admin, err := pgx.Connect(t.Context(), direct)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(t.Context(), "SELECT pg_terminate_backend($1)", pid); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, "migrate", "up", "--storage", direct).CombinedOutput(); err != nil {
		t.Fatalf("floodtune migrate after the holder was terminated: %v\n%s", err, out)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
