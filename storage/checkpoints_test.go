package storage_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
)

func TestCheckpointConformance(t *testing.T) {
	runConformance(t, checkpointTests)
}

const mib = 1 << 20

// filled returns n bytes, each b.
func filled(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// put puts a checkpoint and fails t unless the result is want, without an
// error.
func put(t testing.TB, st *storage.Store, studyID int64, key string, epoch int, meta string, data []byte, limit int64, want bool) {
	t.Helper()
	stored, err := st.PutCheckpoint(t.Context(), studyID, key, epoch, meta, data, limit)
	if err != nil || stored != want {
		t.Fatalf("PutCheckpoint(study %d, %q, epoch %d, %d bytes, limit %d) = %v, %v; want %v, nil", studyID, key, epoch, len(data), limit, stored, err, want)
	}
}

// wantUsage fails t unless the study's checkpoints are count and total
// bytes.
func wantUsage(t testing.TB, st *storage.Store, studyID int64, count int, total int64) {
	t.Helper()
	n, b, err := st.CheckpointUsage(t.Context(), studyID)
	if err != nil || n != count || b != total {
		t.Errorf("CheckpointUsage(study %d) = %d, %d, %v; want %d, %d, nil", studyID, n, b, err, count, total)
	}
}

// wantData fails t unless the checkpoint's data is want.
func wantData(t testing.TB, st *storage.Store, studyID int64, key string, epoch int, want []byte) {
	t.Helper()
	got, err := st.Checkpoint(t.Context(), studyID, key, epoch)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("Checkpoint(study %d, %q, epoch %d) = %d bytes, %v; want the %d bytes put", studyID, key, epoch, len(got), err, len(want))
	}
}

// epochs returns the epochs listed by Checkpoints.
func epochs(t testing.TB, st *storage.Store, studyID int64, key string) []int {
	t.Helper()
	cs, err := st.Checkpoints(t.Context(), studyID, key)
	if err != nil {
		t.Fatalf("Checkpoints(study %d, %q): %v", studyID, key, err)
	}
	out := []int{}
	for _, c := range cs {
		out = append(out, c.Epoch)
	}
	return out
}

var checkpointTests = []conformanceTest{
	{"a checkpoint round-trips with its meta", func(t *testing.T, e *env) {
		ctx := t.Context()
		s := newStudy(t, e.st, storage.NewStudy{Name: "s"})
		other := newStudy(t, e.st, storage.NewStudy{Name: "other"})
		data := make([]byte, 3*256+7) // every byte value, NUL included
		for i := range data {
			data[i] = byte(i * 7)
		}
		before := time.Now().Add(-time.Minute)
		meta := `{"lr":0.1,"note":"é"}`
		for _, epoch := range []int{3, 1, 2} {
			put(t, e.st, s.ID, "plain/a", epoch, fmt.Sprintf("%s %d", meta, epoch), append([]byte{byte(epoch)}, data...), 1<<30, true)
		}
		put(t, e.st, s.ID, "plain/b", 1, "", data, 1<<30, true)
		put(t, e.st, other.ID, "plain/a", 4, "", data, 1<<30, true)

		// Through this store and through another (another process).
		for name, st := range map[string]*storage.Store{"the putting store": e.st, "another store": e.open(t)} {
			cs, err := st.Checkpoints(ctx, s.ID, "plain/a")
			if err != nil || len(cs) != 3 {
				t.Fatalf("Checkpoints through %s = %+v, %v; want epochs 1, 2, 3", name, cs, err)
			}
			for i, c := range cs {
				epoch := i + 1
				if c.Key != "plain/a" || c.Epoch != epoch || c.Meta != fmt.Sprintf("%s %d", meta, epoch) || c.Bytes != int64(len(data)+1) {
					t.Errorf("through %s, checkpoint %d is %+v; want plain/a, epoch %d, meta %q, %d bytes", name, i, c, epoch, fmt.Sprintf("%s %d", meta, epoch), len(data)+1)
				}
				if c.Created.Before(before) || c.Created.After(time.Now().Add(time.Minute)) {
					t.Errorf("through %s, epoch %d was created at %v, not about now", name, epoch, c.Created)
				}
				wantData(t, st, s.ID, "plain/a", epoch, append([]byte{byte(epoch)}, data...))
			}
			if cs, err := st.Checkpoints(ctx, s.ID, "plain/b"); err != nil || len(cs) != 1 || cs[0].Meta != "" || cs[0].Bytes != int64(len(data)) {
				t.Errorf("Checkpoints of plain/b through %s = %+v, %v; want epoch 1 with no meta", name, cs, err)
			}
			wantData(t, st, s.ID, "plain/b", 1, data)
			if got := epochs(t, st, other.ID, "plain/a"); len(got) != 1 || got[0] != 4 {
				t.Errorf("the other study's plain/a through %s has epochs %v, want [4]", name, got)
			}
			if got := epochs(t, st, s.ID, "plain"); len(got) != 0 {
				t.Errorf("a key never put through %s has epochs %v", name, got)
			}
			wantUsage(t, st, s.ID, 4, int64(4*len(data)+3))
			wantUsage(t, st, other.ID, 1, int64(len(data)))
			for _, absent := range []struct {
				key   string
				epoch int
			}{{"plain/a", 4}, {"plain/b", 2}, {"plain", 1}} {
				got, err := st.Checkpoint(ctx, s.ID, absent.key, absent.epoch)
				wantErr(t, fmt.Sprintf("Checkpoint(%q, %d) through %s", absent.key, absent.epoch, name), err, storage.ErrNotFound)
				if got != nil {
					t.Errorf("Checkpoint(%q, %d) through %s returned %d bytes with its error", absent.key, absent.epoch, name, len(got))
				}
				if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("study id %d", s.ID)) {
					t.Errorf("the error %q does not name study id %d", err, s.ID)
				}
			}
		}
	}},
	{"the first writer wins", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{})
		first, second := filled(100, 1), filled(50, 2)
		put(t, e.st, s.ID, "k", 1, "first", first, 1000, true)
		put(t, e.st, s.ID, "k", 1, "second", second, 1000, false)
		put(t, e.open(t), s.ID, "k", 1, "third", second, 1000, false)
		wantData(t, e.st, s.ID, "k", 1, first)
		if cs, err := e.st.Checkpoints(t.Context(), s.ID, "k"); err != nil || len(cs) != 1 || cs[0].Meta != "first" || cs[0].Bytes != 100 {
			t.Errorf("Checkpoints = %+v, %v; want the first writer's", cs, err)
		}
		wantUsage(t, e.st, s.ID, 1, 100)
	}},
	{"concurrent writers of one checkpoint store it once", func(t *testing.T, e *env) {
		const n = 8
		stores := e.stores(t, n)
		s := newStudy(t, e.st, storage.NewStudy{})
		stored := make([]bool, n)
		errs := make([]error, n)
		race(n, func(i int) {
			stored[i], errs[i] = stores[i].PutCheckpoint(t.Context(), s.ID, "k", 1, fmt.Sprint(i), filled(mib, byte(i)), 10*mib)
		})
		winner, wins := -1, 0
		for i := range n {
			if errs[i] != nil {
				t.Errorf("PutCheckpoint of store %d: %v", i, errs[i])
			}
			if stored[i] {
				winner, wins = i, wins+1
			}
		}
		if wins != 1 {
			t.Fatalf("%d writers stored the checkpoint, want 1", wins)
		}
		wantData(t, e.st, s.ID, "k", 1, filled(mib, byte(winner)))
		if cs, err := e.st.Checkpoints(t.Context(), s.ID, "k"); err != nil || len(cs) != 1 || cs[0].Meta != fmt.Sprint(winner) {
			t.Errorf("Checkpoints = %+v, %v; want the winner's, %d", cs, err, winner)
		}
		wantUsage(t, e.st, s.ID, 1, mib)
	}},
	{"a limit of 0 stores nothing", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{})
		put(t, e.st, s.ID, "k", 1, "", []byte{1}, 0, false)
		wantUsage(t, e.st, s.ID, 0, 0)
		if got := epochs(t, e.st, s.ID, "k"); len(got) != 0 {
			t.Errorf("epochs %v stored under a limit of 0", got)
		}
		_, err := e.st.Checkpoint(t.Context(), s.ID, "k", 1)
		wantErr(t, "Checkpoint of a checkpoint refused", err, storage.ErrNotFound)
	}},
	{"the limit holds exactly at the boundary", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{Name: "s"})
		other := newStudy(t, e.st, storage.NewStudy{Name: "other"})
		const limit = 100
		put(t, e.st, s.ID, "a", 1, "", filled(60, 1), limit, true)
		put(t, e.st, s.ID, "b", 1, "", filled(41, 2), limit, false) // 101
		put(t, e.st, s.ID, "b", 1, "", filled(40, 2), limit, true)  // 100: the limit itself
		wantUsage(t, e.st, s.ID, 2, limit)
		put(t, e.st, s.ID, "c", 1, "", filled(1, 3), limit, false)
		put(t, e.st, s.ID, "c", 1, "", filled(1, 3), limit+1, true) // the limit is the caller's
		wantUsage(t, e.st, s.ID, 3, limit+1)
		// The limit bounds each study's checkpoints, not the storage's.
		put(t, e.st, other.ID, "a", 1, "", filled(limit, 4), limit, true)
		wantUsage(t, e.st, other.ID, 1, limit)
		put(t, e.st, other.ID, "a", 2, "", filled(limit+1, 4), limit+1, false)
		// Deleting makes room again.
		if n, b, err := e.st.DeleteCheckpoints(t.Context(), s.ID); err != nil || n != 3 || b != limit+1 {
			t.Fatalf("DeleteCheckpoints = %d, %d, %v; want 3, %d", n, b, err, limit+1)
		}
		put(t, e.st, s.ID, "a", 1, "", filled(limit, 5), limit, true)
		wantData(t, e.st, s.ID, "a", 1, filled(limit, 5))
		wantUsage(t, e.st, s.ID, 1, limit)
	}},
	{"the limit holds when stores put at once", func(t *testing.T, e *env) {
		// Each store has its own connections, as the processes of workers on
		// several machines would.
		const n, fit = 8, 5
		stores := e.stores(t, n)
		for round := range 3 {
			s := newStudy(t, e.st, storage.NewStudy{Name: fmt.Sprint("round ", round)})
			stored := make([]bool, n)
			errs := make([]error, n)
			race(n, func(i int) {
				stored[i], errs[i] = stores[i].PutCheckpoint(t.Context(), s.ID, "plain", i+1, "", filled(mib, byte(i)), fit*mib)
			})
			var got []int
			for i := range n {
				if errs[i] != nil {
					t.Errorf("round %d: PutCheckpoint of store %d: %v", round, i, errs[i])
				}
				if stored[i] {
					got = append(got, i+1)
				}
			}
			if len(got) != fit {
				t.Errorf("round %d: epochs %v stored, want %d of them", round, got, fit)
			}
			wantUsage(t, e.st, s.ID, fit, fit*mib)
			if listed := epochs(t, e.st, s.ID, "plain"); fmt.Sprint(listed) != fmt.Sprint(got) {
				t.Errorf("round %d: Checkpoints lists epochs %v, want the %v stored", round, listed, got)
			}
			for _, epoch := range got {
				wantData(t, e.st, s.ID, "plain", epoch, filled(mib, byte(epoch-1)))
			}
		}
	}},
	{"bad arguments are refused and store nothing", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{})
		for _, tc := range []struct {
			name  string
			key   string
			epoch int
			meta  string
			data  []byte
			limit int64
			want  string
		}{
			{"an empty key", "", 1, "", []byte{1}, 10, "key"},
			{"epoch 0", "k", 0, "", []byte{1}, 10, "epoch"},
			{"a negative epoch", "k", -1, "", []byte{1}, 10, "epoch"},
			{"no data", "k", 1, "", nil, 10, "data"},
			{"empty data", "k", 1, "", []byte{}, 10, "data"},
			{"a negative limit", "k", 1, "", []byte{1}, -1, "limit"},
			{"a key that is not UTF-8", "k\xff", 1, "", []byte{1}, 10, "UTF-8"},
			{"a NUL in the meta", "k", 1, "a\x00b", []byte{1}, 10, "NUL"},
		} {
			stored, err := e.st.PutCheckpoint(t.Context(), s.ID, tc.key, tc.epoch, tc.meta, tc.data, tc.limit)
			if err == nil || stored || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), fmt.Sprintf("study id %d", s.ID)) {
				t.Errorf("%s: PutCheckpoint = %v, %v; want an error about the %s that names study id %d", tc.name, stored, err, tc.want, s.ID)
			}
		}
		wantUsage(t, e.st, s.ID, 0, 0)
	}},
	{"an unknown study is not found", func(t *testing.T, e *env) {
		const missing = 424242
		for _, limit := range []int64{0, 1 << 30} {
			stored, err := e.st.PutCheckpoint(t.Context(), missing, "k", 1, "", []byte{1}, limit)
			wantErr(t, fmt.Sprintf("PutCheckpoint into an unknown study, limit %d", limit), err, storage.ErrNotFound)
			if stored || err == nil || !strings.Contains(err.Error(), fmt.Sprintf("study id %d", missing)) {
				t.Errorf("PutCheckpoint into an unknown study = %v, %v; want false and an error naming study id %d", stored, err, missing)
			}
		}
		_, _, err := e.st.DeleteCheckpoints(t.Context(), missing)
		wantErr(t, "DeleteCheckpoints of an unknown study", err, storage.ErrNotFound)
		wantUsage(t, e.st, missing, 0, 0)
		if got := epochs(t, e.st, missing, "k"); len(got) != 0 {
			t.Errorf("an unknown study has epochs %v", got)
		}
		if n := rawCount(t, e, "SELECT count(*) FROM checkpoints"); n != 0 {
			t.Errorf("%d checkpoints stored", n)
		}
	}},
	{"DeleteCheckpoints returns what it freed", func(t *testing.T, e *env) {
		s := newStudy(t, e.st, storage.NewStudy{Name: "s"})
		kept := newStudy(t, e.st, storage.NewStudy{Name: "kept"})
		put(t, e.st, s.ID, "a", 1, "", filled(10, 1), 1000, true)
		put(t, e.st, s.ID, "a", 2, "", filled(20, 2), 1000, true)
		put(t, e.st, s.ID, "b", 1, "m", filled(30, 3), 1000, true)
		put(t, e.st, kept.ID, "a", 1, "", filled(7, 4), 1000, true)
		if n, b, err := e.st.DeleteCheckpoints(t.Context(), s.ID); err != nil || n != 3 || b != 60 {
			t.Fatalf("DeleteCheckpoints = %d, %d, %v; want 3, 60", n, b, err)
		}
		wantUsage(t, e.st, s.ID, 0, 0)
		if got := epochs(t, e.st, s.ID, "a"); len(got) != 0 {
			t.Errorf("epochs %v of a remain", got)
		}
		if n, b, err := e.open(t).DeleteCheckpoints(t.Context(), s.ID); err != nil || n != 0 || b != 0 {
			t.Errorf("DeleteCheckpoints again = %d, %d, %v; want 0, 0", n, b, err)
		}
		wantUsage(t, e.st, kept.ID, 1, 7)
		wantData(t, e.st, kept.ID, "a", 1, filled(7, 4))
	}},
	{"DeleteStudy deletes the study's checkpoints", func(t *testing.T, e *env) {
		ctx := t.Context()
		doomed := newStudy(t, e.st, storage.NewStudy{Name: "doomed"})
		kept := newStudy(t, e.st, storage.NewStudy{Name: "kept"})
		put(t, e.st, doomed.ID, "a", 1, "", filled(10, 1), 1000, true)
		put(t, e.st, doomed.ID, "b", 2, "", filled(20, 2), 1000, true)
		put(t, e.st, kept.ID, "a", 1, "", filled(30, 3), 1000, true)
		if err := e.st.DeleteStudy(ctx, doomed.ID); err != nil {
			t.Fatal(err)
		}
		if n := rawCount(t, e, fmt.Sprintf("SELECT count(*) FROM checkpoints WHERE study_id = %d", doomed.ID)); n != 0 {
			t.Errorf("%d checkpoints of the deleted study remain", n)
		}
		if n := rawCount(t, e, "SELECT count(*) FROM checkpoints"); n != 1 {
			t.Errorf("%d checkpoints remain, want the kept study's 1", n)
		}
		wantUsage(t, e.st, doomed.ID, 0, 0)
		_, err := e.st.Checkpoint(ctx, doomed.ID, "a", 1)
		wantErr(t, "Checkpoint of the deleted study", err, storage.ErrNotFound)
		_, err = e.st.PutCheckpoint(ctx, doomed.ID, "a", 1, "", filled(10, 1), 1000)
		wantErr(t, "PutCheckpoint into the deleted study", err, storage.ErrNotFound)
		wantUsage(t, e.st, kept.ID, 1, 30)
		wantData(t, e.st, kept.ID, "a", 1, filled(30, 3))
	}},
	{"reverting 002_checkpoints drops the checkpoints and keeps the studies", func(t *testing.T, e *env) {
		ctx := t.Context()
		s := newStudy(t, e.st, storage.NewStudy{})
		put(t, e.st, s.ID, "a", 1, "", filled(10, 1), 1000, true)
		if ran, err := e.st.Migrate(ctx, storage.Down, 2); err != nil || len(ran) != 1 || ran[0].Version != 3 {
			t.Fatalf("Migrate(Down, 2) = %v, %v; want 003_tokens only", ran, err)
		}
		ran, err := e.st.Migrate(ctx, storage.Down, 1)
		if err != nil || len(ran) != 1 || ran[0].Version != 2 || ran[0].Name != "checkpoints" {
			t.Fatalf("Migrate(Down, 1) = %v, %v; want 002_checkpoints only", ran, err)
		}
		if _, _, err := e.st.CheckpointUsage(ctx, s.ID); err == nil {
			t.Error("CheckpointUsage works with 002_checkpoints reverted: the table is still there")
		}
		if _, err := e.st.Study(ctx, s.ID); err != nil {
			t.Errorf("the study is gone with 002_checkpoints: %v", err)
		}
		if ran, err := e.st.Migrate(ctx, storage.Up, 2); err != nil || len(ran) != 1 || ran[0].Version != 2 {
			t.Fatalf("Migrate(Up, 2) = %v, %v; want 002_checkpoints only", ran, err)
		}
		wantUsage(t, e.st, s.ID, 0, 0)
		put(t, e.st, s.ID, "a", 1, "", filled(10, 2), 1000, true)
		wantData(t, e.st, s.ID, "a", 1, filled(10, 2))
	}},
}
