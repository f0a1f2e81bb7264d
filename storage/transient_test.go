package storage_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

// terminator kills the PostgreSQL connections of the floodtune stores on one
// database, as a restarting server or a failover would, from a connection of
// its own.
type terminator struct {
	conn *pgx.Conn
}

func newTerminator(t testing.TB, dbURL string) *terminator {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "floodtune-test-admin")
	u.RawQuery = q.Encode()
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		t.Fatalf("admin connection: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return &terminator{conn: conn}
}

// kill terminates the stores' connections and returns how many it killed.
// Only those of the test's own database: other tests run beside it.
func (k *terminator) kill(t testing.TB) int {
	t.Helper()
	var n int
	err := k.conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = 'floodtune' AND pid <> pg_backend_pid() AND datname = current_database()`).Scan(&n)
	if err != nil {
		t.Fatalf("terminate the store's connections: %v", err)
	}
	return n
}

// A store survives its connections being killed: pgxpool connects again and
// the store retries what failed.
func TestPostgresSurvivesKilledConnections(t *testing.T) {
	t.Parallel()
	t.Run("operations after the connections were killed succeed", func(t *testing.T) {
		t.Parallel()
		dbURL := pgtest.Database(t) // its own database, so that only its connections are killed
		st := openStore(t, dbURL)
		k := newTerminator(t, dbURL)
		ctx := t.Context()
		study := newStudy(t, st, storage.NewStudy{Budget: 60})
		killed := 0
		for i := range 60 {
			if i%5 == 0 {
				killed += k.kill(t)
			}
			tr, err := st.CreateTrial(ctx, study.ID, running("w"))
			if err != nil {
				t.Fatalf("iteration %d: CreateTrial: %v", i, err)
			}
			if err := st.SetParam(ctx, tr.ID, "w", "x", uniform(0.5, 0, 1)); err != nil {
				t.Fatalf("iteration %d: SetParam: %v", i, err)
			}
			if i%5 == 2 {
				killed += k.kill(t)
			}
			if err := st.Report(ctx, tr.ID, "w", 0, 1); err != nil {
				t.Fatalf("iteration %d: Report: %v", i, err)
			}
			if err := st.Finish(ctx, tr.ID, "w", storage.Complete, float64(i)); err != nil {
				t.Fatalf("iteration %d: Finish: %v", i, err)
			}
			if _, err := st.Trials(ctx, study.ID); err != nil {
				t.Fatalf("iteration %d: Trials: %v", i, err)
			}
			if _, err := st.Reap(ctx, time.Hour, 3); err != nil {
				t.Fatalf("iteration %d: Reap: %v", i, err)
			}
		}
		if killed == 0 {
			t.Fatal("no connection was killed: the test tests nothing")
		}
		t.Logf("%d connections killed", killed)
		ts := getTrials(t, st, study.ID)
		checkNumbers(t, ts, 60)
		for _, tr := range ts {
			if tr.State != storage.Complete || tr.Value != float64(tr.Number) || len(tr.Params) != 1 || len(tr.Intermediate) != 1 {
				t.Errorf("trial %d: %s, value %v, %d params, %d values", tr.Number, tr.State, tr.Value, len(tr.Params), len(tr.Intermediate))
			}
		}
	})
	t.Run("workers keep writing their trials while connections are killed", func(t *testing.T) {
		t.Parallel()
		dbURL := pgtest.Database(t)
		stores := []*storage.Store{openStore(t, dbURL), openStore(t, dbURL)}
		k := newTerminator(t, dbURL)
		study := newStudy(t, stores[0], storage.NewStudy{})
		const workers, steps = 8, 20
		trials := make([]*storage.Trial, workers)
		for i := range trials {
			trials[i] = newTrial(t, stores[0], study.ID, running(fmt.Sprint("w", i)))
		}
		// The killer waits, after each kill, until every worker has finished
		// an operation since then: each operation is cut at most once, so
		// the retries succeed however slow the machine is, and the workers
		// still lose their connections throughout.
		progress := make([]atomic.Int64, workers)
		const finished = int64(1) << 62
		stop := make(chan struct{})
		var killer sync.WaitGroup
		var killed atomic.Int32
		killer.Add(1)
		go func() {
			defer killer.Done()
			seen := make([]int64, workers)
			for {
				for i := range progress {
					seen[i] = progress[i].Load()
				}
				killed.Add(int32(k.kill(t)))
				for moved := false; !moved; {
					select {
					case <-stop:
						return
					case <-time.After(20 * time.Millisecond):
					}
					moved = true
					for i := range progress {
						if p := progress[i].Load(); p == seen[i] && p < finished {
							moved = false
						}
					}
				}
			}
		}()
		// The writes of a running trial: single statements that the store
		// may retry after a lost connection.
		race(workers, func(i int) {
			st, w, id := stores[i%len(stores)], fmt.Sprint("w", i), trials[i].ID
			ctx := t.Context()
			defer progress[i].Store(finished)
			for step := range steps {
				for _, op := range []struct {
					name string
					do   func() error
				}{
					{"Heartbeat", func() error { return st.Heartbeat(ctx, id, w) }},
					{"Report", func() error { return st.Report(ctx, id, w, step, float64(step)) }},
					{"SetParam", func() error { return st.SetParam(ctx, id, w, fmt.Sprint("p", step), uniform(0.5, 0, 1)) }},
					{"SetValue", func() error { return st.SetValue(ctx, id, w, float64(step)) }},
					{"SetTrialAttr", func() error { return st.SetTrialAttr(ctx, id, w, storage.UserAttr, "step", fmt.Sprint(step)) }},
					{"Trials", func() error { _, err := st.Trials(ctx, study.ID); return err }},
				} {
					if err := op.do(); err != nil {
						t.Errorf("worker %s, step %d: %s: %v", w, step, op.name, err)
					}
					progress[i].Add(1)
				}
			}
			if err := st.Finish(ctx, id, w, storage.Complete, steps); err != nil {
				t.Errorf("worker %s: Finish: %v", w, err)
			}
		})
		close(stop)
		killer.Wait()
		t.Logf("%d connections killed", killed.Load())
		if killed.Load() == 0 {
			t.Error("no connection was killed: the test tests nothing")
		}
		for _, tr := range getTrials(t, stores[1], study.ID) {
			if tr.State != storage.Complete || tr.Value != steps || len(tr.Intermediate) != steps || len(tr.Params) != steps || tr.UserAttrs["step"] != fmt.Sprint(steps-1) {
				t.Errorf("trial %d: %s, value %v, %d values, %d params, attrs %v", tr.Number, tr.State, tr.Value, len(tr.Intermediate), len(tr.Params), tr.UserAttrs)
			}
		}
	})
}

// When the server ends a connection while a transaction waits for its
// COMMIT (an administrator, a failover, a restart), it aborts the
// transaction and answers the COMMIT with FATAL 57P01: the transaction did
// not commit, and the store must do it again rather than fail. A deferred
// trigger makes the server do that, once, at the COMMIT of a transaction
// that inserts a trial.
func TestPostgresRetriesACommitTheServerRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// prepare runs before the kill is armed; op is what must succeed.
		prepare func(t *testing.T, st *storage.Store, studyID int64) *storage.Trial
		op      func(t *testing.T, st *storage.Store, tr *storage.Trial) error
		trials  int // how many trials the study has after op
	}{
		{"CreateTrial", func(*testing.T, *storage.Store, int64) *storage.Trial { return nil },
			func(t *testing.T, st *storage.Store, _ *storage.Trial) error {
				_, err := st.CreateTrial(t.Context(), 1, running("w"))
				return err
			}, 1},
		{"GiveBack", func(t *testing.T, st *storage.Store, studyID int64) *storage.Trial {
			return newTrial(t, st, studyID, running("w"))
		}, func(t *testing.T, st *storage.Store, tr *storage.Trial) error {
			_, err := st.GiveBack(t.Context(), tr.ID, "w", "stopping")
			return err
		}, 2},
		{"Reap", func(t *testing.T, st *storage.Store, studyID int64) *storage.Trial {
			tr := newTrial(t, st, studyID, running("w"))
			stale()
			return tr
		}, func(t *testing.T, st *storage.Store, tr *storage.Trial) error {
			r, err := st.Reap(t.Context(), grace, 3)
			if err == nil && len(r) != 1 {
				t.Errorf("Reap = %+v, want the stale trial", r)
			}
			return err
		}, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := &env{backend: "postgres", url: pgtest.Schema(t)}
			st := openStore(t, e.url)
			study := newStudy(t, st, storage.NewStudy{})
			if study.ID != 1 {
				t.Fatalf("study id %d, want 1", study.ID)
			}
			tr := c.prepare(t, st, study.ID)
			db := rawDB(t, e)
			if _, err := db.ExecContext(t.Context(), `CREATE SEQUENCE kill_next;
				CREATE FUNCTION kill_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF nextval('kill_next') = 1 THEN -- once: a sequence does not roll back
						PERFORM pg_terminate_backend(pg_backend_pid());
						PERFORM pg_sleep(5); -- until the signal ends the connection
					END IF;
					RETURN NULL;
				END $$;
				CREATE CONSTRAINT TRIGGER kill_at_commit AFTER INSERT ON trials
					DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION kill_at_commit()`); err != nil {
				t.Fatalf("arm the kill: %v", err)
			}
			if err := c.op(t, st, tr); err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			var fired int64
			if err := db.QueryRowContext(t.Context(), `SELECT last_value FROM kill_next`).Scan(&fired); err != nil || fired < 1 {
				t.Fatalf("the kill did not fire (%v): the test tests nothing", err)
			}
			ts := getTrials(t, st, study.ID)
			checkNumbers(t, ts, c.trials)
		})
	}
}
