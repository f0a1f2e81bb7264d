package storage_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
)

// The store's own API, on every backend.
func TestStoreConformance(t *testing.T) {
	runConformance(t, storeTests)
}

var storeTests = []conformanceTest{
	{"the store says which backend it is and hides no surprises in its URL", func(t *testing.T, e *env) {
		if got := e.st.Dialect(); got != e.backend {
			t.Errorf("Dialect() = %q, want %q", got, e.backend)
		}
		if got := e.st.URL(); got != storage.Redact(e.url) {
			t.Errorf("URL() = %q, want %q", got, storage.Redact(e.url))
		}
	}},
	{"a study round-trips with everything it was created with", func(t *testing.T, e *env) {
		ctx := t.Context()
		before := time.Now().Add(-time.Minute)
		spec := json.RawMessage(`{"objective": "mnist", "space": {"flood": [0, 0.5]}, "epochs": 20}`)
		st := newStudy(t, e.st, storage.NewStudy{Name: "mnist", Direction: storage.Maximize, Spec: spec, Budget: 30, Seed: -42})
		if st.ID == 0 || st.Name != "mnist" || st.Direction != storage.Maximize || st.Budget != 30 || st.Seed != -42 {
			t.Errorf("created study %+v", st)
		}
		if !sameJSON(st.Spec, spec) {
			t.Errorf("spec %s, want %s", st.Spec, spec)
		}
		if st.CreatedAt.Before(before) || st.CreatedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("created at %v, want about now", st.CreatedAt)
		}
		if err := e.st.SetStudyAttr(ctx, st.ID, storage.UserAttr, "owner", "ann"); err != nil {
			t.Fatal(err)
		}
		if err := e.st.SetStudyAttr(ctx, st.ID, storage.SystemAttr, "owner", "floodtune"); err != nil {
			t.Fatal(err)
		}
		for _, get := range []struct {
			name string
			get  func() (*storage.Study, error)
		}{
			{"Study", func() (*storage.Study, error) { return e.st.Study(ctx, st.ID) }},
			{"StudyByName", func() (*storage.Study, error) { return e.st.StudyByName(ctx, "mnist") }},
		} {
			got, err := get.get()
			if err != nil {
				t.Fatalf("%s: %v", get.name, err)
			}
			if got.ID != st.ID || got.Name != st.Name || got.Direction != st.Direction || got.Budget != st.Budget || got.Seed != st.Seed ||
				!got.CreatedAt.Equal(st.CreatedAt) || !sameJSON(got.Spec, spec) {
				t.Errorf("%s = %+v, want %+v", get.name, got, st)
			}
			if got.UserAttrs["owner"] != "ann" || got.SystemAttrs["owner"] != "floodtune" || len(got.UserAttrs) != 1 || len(got.SystemAttrs) != 1 {
				t.Errorf("%s: attrs %v / %v", get.name, got.UserAttrs, got.SystemAttrs)
			}
		}
		// Without a spec, the spec is {}.
		plain := newStudy(t, e.st, storage.NewStudy{Name: "plain"})
		if !sameJSON(plain.Spec, []byte(`{}`)) {
			t.Errorf("spec of a study created without one: %s, want {}", plain.Spec)
		}
	}},
	{"study names are stored and found verbatim", func(t *testing.T, e *env) {
		names := []struct{ what, name string }{
			{"quotes", `it's a "study"`},
			{"SQL", `x'); DROP TABLE studies; --`},
			{"LIKE wildcards", `100%_done\`},
			{"unicode", "洪水 flooding 🌊 Ünïcödé"},
			{"spaces around", "  spaced out  "},
			{"512 bytes", strings.Repeat("é", storage.MaxNameLength/2)},
			{"one byte", "x"},
		}
		ids := map[int64]string{}
		for _, n := range names {
			t.Run(n.what, func(t *testing.T) {
				st := newStudy(t, e.st, storage.NewStudy{Name: n.name})
				ids[st.ID] = n.name
				if st.Name != n.name {
					t.Errorf("created study's name %q, want %q", st.Name, n.name)
				}
				got, err := e.st.StudyByName(t.Context(), n.name)
				if err != nil || got.ID != st.ID || got.Name != n.name {
					t.Errorf("StudyByName(%q) = %+v, %v", n.name, got, err)
				}
			})
		}
		all, err := e.st.Studies(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(names) {
			t.Errorf("%d studies, want %d (did the SQL name do something?)", len(all), len(names))
		}
		for _, st := range all {
			if ids[st.ID] != st.Name {
				t.Errorf("Studies: study %d is named %q, want %q", st.ID, st.Name, ids[st.ID])
			}
		}
	}},
	{"invalid study names are refused", func(t *testing.T, e *env) {
		for _, n := range []struct{ what, name string }{
			{"empty", ""},
			{"513 bytes", strings.Repeat("x", storage.MaxNameLength+1)},
			{"invalid UTF-8", "bad \xff name"},
			{"a newline", "two\nlines"},
			{"a NUL byte", "nul\x00byte"},
			{"DEL", "del\x7f"},
			{"a tab", "tab\there"},
		} {
			t.Run(n.what, func(t *testing.T) {
				if err := storage.CheckName(n.name); err == nil {
					t.Errorf("CheckName(%q) = nil, want an error", n.name)
				}
				if st, err := e.st.CreateStudy(t.Context(), storage.NewStudy{Name: n.name, Direction: storage.Minimize}); err == nil {
					t.Errorf("CreateStudy(%q) = study %d, want an error", n.name, st.ID)
				}
			})
		}
		if all, err := e.st.Studies(t.Context()); err != nil || len(all) != 0 {
			t.Errorf("after refused names: %d studies, %v", len(all), err)
		}
	}},
	{"other invalid studies are refused", func(t *testing.T, e *env) {
		for _, c := range []struct {
			what string
			ns   storage.NewStudy
		}{
			{"no direction", storage.NewStudy{Name: "a"}},
			{"an unknown direction", storage.NewStudy{Name: "a", Direction: "sideways"}},
			{"a negative budget", storage.NewStudy{Name: "a", Direction: storage.Minimize, Budget: -1}},
			{"a spec that is not JSON", storage.NewStudy{Name: "a", Direction: storage.Minimize, Spec: json.RawMessage(`{"a":`)}},
		} {
			if _, err := e.st.CreateStudy(t.Context(), c.ns); err == nil {
				t.Errorf("a study with %s was created", c.what)
			}
		}
		st := newStudy(t, e.st, storage.NewStudy{Name: "s"})
		if err := e.st.SetStudyDirection(t.Context(), st.ID, "up"); err == nil {
			t.Error("SetStudyDirection(up): no error")
		}
	}},
	{"a study name in use is refused with ErrStudyExists", func(t *testing.T, e *env) {
		first := newStudy(t, e.st, storage.NewStudy{Name: "taken", Budget: 3})
		_, err := e.st.CreateStudy(t.Context(), storage.NewStudy{Name: "taken", Direction: storage.Maximize, Budget: 9})
		wantErr(t, "second CreateStudy", err, storage.ErrStudyExists)
		got, err := e.st.StudyByName(t.Context(), "taken")
		if err != nil || got.ID != first.ID || got.Direction != storage.Minimize || got.Budget != 3 {
			t.Errorf("the first study changed: %+v, %v", got, err)
		}
	}},
	{"unknown studies and trials are ErrNotFound", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		_, err := e.st.Study(ctx, 987654)
		wantErr(t, "Study", err, storage.ErrNotFound)
		_, err = e.st.StudyByName(ctx, "nobody")
		wantErr(t, "StudyByName", err, storage.ErrNotFound)
		wantErr(t, "DeleteStudy", e.st.DeleteStudy(ctx, 987654), storage.ErrNotFound)
		wantErr(t, "SetStudyAttr", e.st.SetStudyAttr(ctx, 987654, storage.UserAttr, "k", "v"), storage.ErrNotFound)
		wantErr(t, "SetStudyDirection", e.st.SetStudyDirection(ctx, 987654, storage.Maximize), storage.ErrNotFound)
		_, err = e.st.CreateTrial(ctx, 987654, running("w"))
		wantErr(t, "CreateTrial", err, storage.ErrNotFound)
		_, err = e.st.Trial(ctx, 987654)
		wantErr(t, "Trial", err, storage.ErrNotFound)
		_, err = e.st.TrialByNumber(ctx, st.ID, 0)
		wantErr(t, "TrialByNumber", err, storage.ErrNotFound)
		_, err = e.st.Best(ctx, st.ID)
		wantErr(t, "Best", err, storage.ErrNotFound)
		_, err = e.st.ClaimWaiting(ctx, st.ID, "w")
		wantErr(t, "ClaimWaiting", err, storage.ErrNotFound)
		wantErr(t, "Claim", e.st.Claim(ctx, 987654, "w"), storage.ErrNotFound)
		wantErr(t, "Heartbeat", e.st.Heartbeat(ctx, 987654, "w"), storage.ErrNotFound)
		if ts, err := e.st.Trials(ctx, st.ID); err != nil || len(ts) != 0 {
			t.Errorf("Trials of an empty study: %d, %v", len(ts), err)
		}
	}},
	{"Studies lists every study by id with its attributes", func(t *testing.T, e *env) {
		ctx := t.Context()
		a := newStudy(t, e.st, storage.NewStudy{Name: "a"})
		b := newStudy(t, e.st, storage.NewStudy{Name: "b", Direction: storage.Maximize, Budget: 5})
		if err := e.st.SetStudyAttr(ctx, b.ID, storage.UserAttr, "k", "v"); err != nil {
			t.Fatal(err)
		}
		if err := e.st.SetStudyAttr(ctx, b.ID, storage.UserAttr, "k", "v2"); err != nil {
			t.Fatal(err)
		}
		all, err := e.st.Studies(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].ID != a.ID || all[1].ID != b.ID {
			t.Fatalf("Studies = %+v, want a then b", all)
		}
		if all[1].Direction != storage.Maximize || all[1].Budget != 5 || !maps.Equal(all[1].UserAttrs, map[string]string{"k": "v2"}) || len(all[0].UserAttrs) != 0 {
			t.Errorf("Studies: %+v", all)
		}
	}},
	{"deleting a study deletes its trials and their details, and only those", func(t *testing.T, e *env) {
		ctx := t.Context()
		doomed := newStudy(t, e.st, storage.NewStudy{Name: "doomed"})
		kept := newStudy(t, e.st, storage.NewStudy{Name: "kept"})
		full := storage.NewTrial{State: storage.Complete, Value: 1,
			Params:       map[string]storage.Param{"x": uniform(0.5, 0, 1)},
			Intermediate: map[int]float64{0: 1}, UserAttrs: map[string]string{"k": "v"}, SystemAttrs: map[string]string{"s": "t"}}
		var doomedTrials []int64
		for range 3 {
			doomedTrials = append(doomedTrials, newTrial(t, e.st, doomed.ID, full).ID)
		}
		r := newTrial(t, e.st, doomed.ID, running("w"))
		if _, err := e.st.GiveBack(ctx, r.ID, "w", "stop"); err != nil { // a retry refers to r
			t.Fatal(err)
		}
		keptTrial := newTrial(t, e.st, kept.ID, full)
		if err := e.st.SetStudyAttr(ctx, doomed.ID, storage.UserAttr, "k", "v"); err != nil {
			t.Fatal(err)
		}
		// Read before they go, as a dashboard would, through this store and
		// through another (another process).
		other := e.open(t)
		for _, st := range []*storage.Store{e.st, other} {
			for _, id := range append(doomedTrials, r.ID) {
				getTrial(t, st, id)
			}
			getTrials(t, st, doomed.ID)
		}
		if err := e.st.DeleteStudy(ctx, doomed.ID); err != nil {
			t.Fatal(err)
		}
		for name, st := range map[string]*storage.Store{"the deleting store": e.st, "another store": other} {
			for _, id := range append(doomedTrials, r.ID) {
				_, err := st.Trial(ctx, id)
				wantErr(t, "Trial of the deleted study, through "+name, err, storage.ErrNotFound)
			}
			if ts := getTrials(t, st, doomed.ID); len(ts) != 0 {
				t.Errorf("%d trials of the deleted study remain, through %s", len(ts), name)
			}
		}
		got := getTrial(t, e.st, keptTrial.ID)
		if len(got.Params) != 1 || len(got.Intermediate) != 1 || len(got.UserAttrs) != 1 || len(got.SystemAttrs) != 1 {
			t.Errorf("the other study's trial lost details: %+v", got)
		}
		for table, want := range map[string]int{"trials": 1, "trial_params": 1, "trial_values": 1, "trial_attrs": 2, "study_attrs": 0, "studies": 1} {
			if n := rawCount(t, e, "SELECT count(*) FROM "+table); n != want {
				t.Errorf("%d rows left in %s, want %d", n, table, want)
			}
		}
		// The name can be used again, and numbers start again from 0.
		again := newStudy(t, e.st, storage.NewStudy{Name: "doomed"})
		if tr := newTrial(t, e.st, again.ID, running("w")); tr.Number != 0 {
			t.Errorf("first trial of the new study has number %d", tr.Number)
		}
	}},
	{"a trial created with every detail round-trips", func(t *testing.T, e *env) {
		before := time.Now().Add(-time.Minute)
		// PostgreSQL keeps the sign of a zero; SQLite writes a whole REAL
		// as an integer and reads back +0 (equal, as goptuna compares).
		negZero := math.Copysign(0, -1)
		if e.backend == "sqlite" {
			negZero = 0
		}
		for _, state := range []storage.State{storage.Running, storage.Waiting, storage.Complete, storage.Pruned, storage.Fail} {
			t.Run(string(state), func(t *testing.T) {
				st := newStudy(t, e.st, storage.NewStudy{Name: string(state)})
				nt := storage.NewTrial{
					State: state, Value: nan,
					Params: map[string]storage.Param{
						"flood": uniform(0.25, 0, 1),
						"act":   {Value: 2, Distribution: []byte(`{"name":"CategoricalDistribution","attributes":{"choices":["a","b","c"]}}`)},
					},
					Intermediate: map[int]float64{0: 0.5, 1: nan, 2: math.Inf(1), 5: negZero},
					UserAttrs:    map[string]string{"note": "it's \"x\""},
					SystemAttrs:  map[string]string{storage.FixedParamsAttr: `{"flood":0.25}`},
				}
				if state == storage.Running {
					nt.Worker = "worker-1"
				}
				if state.Final() {
					nt.Value = 0.75
				}
				tr := newTrial(t, e.st, st.ID, nt)
				want := &storage.Trial{ID: tr.ID, StudyID: st.ID, Number: 0, State: state, Value: nt.Value, Worker: nt.Worker,
					Params: nt.Params, Intermediate: nt.Intermediate, UserAttrs: nt.UserAttrs, SystemAttrs: nt.SystemAttrs}
				// CreateTrial need not read the times back: compare those of
				// the trial read.
				got := getTrial(t, e.st, tr.ID)
				want.StartedAt, want.CompletedAt, want.HeartbeatAt = tr.StartedAt, tr.CompletedAt, tr.HeartbeatAt
				if d := trialDiff(tr, want); d != "" {
					t.Errorf("created trial: %s", d)
				}
				want.StartedAt, want.CompletedAt, want.HeartbeatAt = got.StartedAt, got.CompletedAt, got.HeartbeatAt
				if d := trialDiff(got, want); d != "" {
					t.Errorf("read back: %s", d)
				}
				if (state == storage.Waiting) != got.StartedAt.IsZero() || state.Final() == got.CompletedAt.IsZero() ||
					(state == storage.Running) == got.HeartbeatAt.IsZero() {
					t.Errorf("%s trial: started %v, completed %v, heartbeat %v", state, got.StartedAt, got.CompletedAt, got.HeartbeatAt)
				}
				if !got.StartedAt.IsZero() && got.StartedAt.Before(before) {
					t.Errorf("started at %v, long ago", got.StartedAt)
				}
				if state.Final() != tr.HasValue() {
					t.Errorf("HasValue() = %v for a %s trial", tr.HasValue(), state)
				}
			})
		}
	}},
	{"a trial with a long learning curve is created and read back", func(t *testing.T, e *env) {
		// Goptuna's CloneTrial copies a trial with every intermediate value
		// it reported: one per step of a long training, possibly.
		st := newStudy(t, e.st, storage.NewStudy{})
		steps := 25000
		if raceDetector && e.backend == "sqlite" {
			steps = 2500 // still more than one INSERT (maxInsertRows); the run without it writes all
		}
		nt := storage.NewTrial{State: storage.Complete, Value: 1, Intermediate: map[int]float64{}, UserAttrs: map[string]string{}}
		for i := range steps {
			nt.Intermediate[i] = 1 / float64(i+1)
		}
		for i := range 100 {
			nt.UserAttrs[fmt.Sprint("k", i)] = "v"
		}
		tr, err := e.st.CreateTrial(t.Context(), st.ID, nt)
		if err != nil {
			t.Fatalf("CreateTrial with %d intermediate values: %v", steps, err)
		}
		if got := getTrial(t, e.st, tr.ID); !sameFloatMap(got.Intermediate, nt.Intermediate) || len(got.UserAttrs) != 100 {
			t.Errorf("read back %d intermediate values and %d attributes, want %d and 100", len(got.Intermediate), len(got.UserAttrs), steps)
		}
	}},
	{"invalid trials are refused", func(t *testing.T, e *env) {
		st := newStudy(t, e.st, storage.NewStudy{})
		for _, c := range []struct {
			what string
			nt   storage.NewTrial
		}{
			{"an unknown state", storage.NewTrial{State: "sleeping", Value: nan}},
			{"no state", storage.NewTrial{Value: nan}},
			{"a running trial without worker", storage.NewTrial{State: storage.Running, Value: nan}},
			{"a distribution that is not JSON", storage.NewTrial{State: storage.Waiting, Value: nan, Params: map[string]storage.Param{"x": {Value: 1, Distribution: []byte("{")}}}},
		} {
			if tr, err := e.st.CreateTrial(t.Context(), st.ID, c.nt); err == nil {
				t.Errorf("a trial with %s was created: %+v", c.what, tr)
			}
		}
		if ts := getTrials(t, e.st, st.ID); len(ts) != 0 {
			t.Errorf("%d trials after refused ones", len(ts))
		}
		tr := newTrial(t, e.st, st.ID, running("w"))
		if err := e.st.SetParam(t.Context(), tr.ID, "w", "x", storage.Param{Value: 1, Distribution: []byte("nope")}); err == nil {
			t.Error("SetParam with a distribution that is not JSON: no error")
		}
		if err := e.st.Finish(t.Context(), tr.ID, "w", storage.Running, 1); err == nil {
			t.Error("Finish in a state that is not final: no error")
		}
		if tr.Number != 0 {
			t.Errorf("the first trial after refused ones has number %d, want 0", tr.Number)
		}
	}},
	{"NaN and infinite values round-trip", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		for _, c := range []struct {
			what string
			v    float64
		}{
			{"NaN", math.NaN()},
			{"+Inf", math.Inf(1)},
			{"-Inf", math.Inf(-1)},
			{"zero", 0},
			{"the largest float", math.MaxFloat64},
			{"the smallest subnormal", math.SmallestNonzeroFloat64},
			{"a float that is not short in decimal", 0.1 + 0.2},
		} {
			t.Run(c.what, func(t *testing.T) {
				// Through SetValue, Report and Finish.
				tr := newTrial(t, e.st, st.ID, running("w"))
				if err := e.st.SetValue(ctx, tr.ID, "w", c.v); err != nil {
					t.Fatal(err)
				}
				for step := range 3 {
					if err := e.st.Report(ctx, tr.ID, "w", step, c.v); err != nil {
						t.Fatal(err)
					}
				}
				got := getTrial(t, e.st, tr.ID)
				if !sameFloat(got.Value, c.v) || got.HasValue() == math.IsNaN(c.v) {
					t.Errorf("value %v (has value: %v), want %v", got.Value, got.HasValue(), c.v)
				}
				if want := map[int]float64{0: c.v, 1: c.v, 2: c.v}; !sameFloatMap(got.Intermediate, want) {
					t.Errorf("intermediate values %v, want %v", got.Intermediate, want)
				}
				if err := e.st.Finish(ctx, tr.ID, "w", storage.Complete, c.v); err != nil {
					t.Fatal(err)
				}
				if got := getTrial(t, e.st, tr.ID); !sameFloat(got.Value, c.v) {
					t.Errorf("value after Finish %v, want %v", got.Value, c.v)
				}
				// Through CreateTrial.
				tr = newTrial(t, e.st, st.ID, storage.NewTrial{State: storage.Complete, Value: c.v, Intermediate: map[int]float64{4: c.v}})
				got = getTrial(t, e.st, tr.ID)
				if !sameFloat(got.Value, c.v) || !sameFloatMap(got.Intermediate, map[int]float64{4: c.v}) {
					t.Errorf("created with %v: value %v, intermediate %v", c.v, got.Value, got.Intermediate)
				}
			})
		}
	}},
	{"Finish with NaN keeps the value already set", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		tr := newTrial(t, e.st, st.ID, running("w"))
		if err := e.st.SetValue(ctx, tr.ID, "w", 0.5); err != nil {
			t.Fatal(err)
		}
		if err := e.st.Finish(ctx, tr.ID, "w", storage.Pruned, nan); err != nil {
			t.Fatal(err)
		}
		if got := getTrial(t, e.st, tr.ID); got.Value != 0.5 || got.State != storage.Pruned || got.CompletedAt.IsZero() {
			t.Errorf("after Finish(pruned, NaN): %s, value %v, completed %v", got.State, got.Value, got.CompletedAt)
		}
	}},
	{"Counts counts each state and what counts toward the budget", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		if by, counted, err := e.st.Counts(ctx, st.ID); err != nil || len(by) != 0 || counted != 0 {
			t.Errorf("Counts of an empty study = %v, %d, %v", by, counted, err)
		}
		for _, s := range []storage.State{storage.Complete, storage.Complete, storage.Pruned, storage.Fail} {
			newTrial(t, e.st, st.ID, storage.NewTrial{State: s, Value: 1})
		}
		newTrial(t, e.st, st.ID, waiting(nil))
		newTrial(t, e.st, st.ID, running("w"))
		given := newTrial(t, e.st, st.ID, running("w"))
		if _, err := e.st.GiveBack(ctx, given.ID, "w", "stopping"); err != nil {
			t.Fatal(err)
		}
		by, counted, err := e.st.Counts(ctx, st.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := map[storage.State]int{storage.Complete: 2, storage.Pruned: 1, storage.Fail: 2, storage.Waiting: 2, storage.Running: 1}
		if !maps.Equal(by, want) || counted != 7 {
			t.Errorf("Counts = %v, %d counted; want %v, 7 (all 8 but the retried one)", by, counted, want)
		}
	}},
	{"Best picks the best complete trial in the study's direction", func(t *testing.T, e *env) {
		ctx := t.Context()
		for _, c := range []struct {
			dir  storage.Direction
			want int // number of the best trial
		}{
			{storage.Minimize, 2},
			{storage.Maximize, 1},
		} {
			t.Run(string(c.dir), func(t *testing.T) {
				st := newStudy(t, e.st, storage.NewStudy{Name: string(c.dir), Direction: c.dir})
				for _, nt := range []storage.NewTrial{
					{State: storage.Complete, Value: 1},               // 0
					{State: storage.Complete, Value: 5},               // 1: best maximising (first of a tie)
					{State: storage.Complete, Value: -3},              // 2: best minimising
					{State: storage.Complete, Value: 5},               // 3: a tie, later
					{State: storage.Complete, Value: -3},              // 4: a tie, later
					{State: storage.Complete, Value: nan},             // 5: no value
					{State: storage.Pruned, Value: -100},              // 6
					{State: storage.Fail, Value: 100},                 // 7
					{State: storage.Running, Worker: "w", Value: 1e9}, // 8
				} {
					newTrial(t, e.st, st.ID, nt)
				}
				best, err := e.st.Best(ctx, st.ID)
				if err != nil || best.Number != c.want {
					t.Errorf("Best = %+v, %v; want number %d", best, err, c.want)
				}
			})
		}
		st := newStudy(t, e.st, storage.NewStudy{Name: "none complete"})
		newTrial(t, e.st, st.ID, storage.NewTrial{State: storage.Pruned, Value: 1})
		newTrial(t, e.st, st.ID, storage.NewTrial{State: storage.Complete, Value: nan})
		_, err := e.st.Best(ctx, st.ID)
		wantErr(t, "Best without a complete trial with a value", err, storage.ErrNotFound)
	}},
	{"Trials lists only what changed since its final prefix, and sees every change", func(t *testing.T, e *env) {
		ctx := t.Context()
		other := e.open(t) // another process's store
		st := newStudy(t, e.st, storage.NewStudy{Name: "prefix"})
		var ids []int64
		for range 6 {
			ids = append(ids, newTrial(t, e.st, st.ID, running("w")).ID)
		}
		finish := func(store *storage.Store, i int) {
			t.Helper()
			if err := store.Finish(ctx, ids[i], "w", storage.Complete, float64(i)); err != nil {
				t.Fatal(err)
			}
		}
		check := func(when string) {
			t.Helper()
			got := getTrials(t, e.st, st.ID)
			want := getTrials(t, other, st.ID) // read by a store with no prefix of its own yet... or with its own
			if len(got) != len(want) {
				t.Fatalf("%s: %d trials, the other store reads %d", when, len(got), len(want))
			}
			for i := range got {
				if got[i].Number != i || got[i].State != want[i].State || got[i].Value != want[i].Value && !(got[i].Value != got[i].Value) {
					t.Errorf("%s: trial %d is %s %v, the other store reads %s %v", when, got[i].Number, got[i].State, got[i].Value, want[i].State, want[i].Value)
				}
			}
		}
		finish(e.st, 0)
		finish(e.st, 1)
		check("two final")
		finish(other, 2) // by another process
		finish(other, 4) // after a gap: not in the prefix yet
		check("four final, one running between")
		ids = append(ids, newTrial(t, other, st.ID, running("w")).ID)
		finish(other, 3)
		finish(other, 5)
		check("all but the newest final")
		finish(e.st, 6)
		check("all final")
	}},
	{"Trials of a study whose id is reused after a schema reset are its own", func(t *testing.T, e *env) {
		ctx := t.Context()
		a := newStudy(t, e.st, storage.NewStudy{Name: "first"})
		for i := range 3 {
			tr := newTrial(t, e.st, a.ID, running("w"))
			if err := e.st.Finish(ctx, tr.ID, "w", storage.Complete, float64(10+i)); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(getTrials(t, e.st, a.ID)); n != 3 {
			t.Fatalf("%d trials, want 3", n)
		}
		// Another process resets the schema: ids start again from 1.
		other := e.open(t)
		for {
			ran, err := other.Migrate(ctx, storage.Down, 0) // the newest, one at a time
			if err != nil {
				t.Fatal(err)
			}
			if len(ran) == 0 {
				break
			}
		}
		if _, err := other.Migrate(ctx, storage.Up, 0); err != nil {
			t.Fatal(err)
		}
		b := newStudy(t, other, storage.NewStudy{Name: "second"})
		if b.ID != a.ID {
			t.Fatalf("the new study has id %d, the deleted one %d: the case is not reached", b.ID, a.ID)
		}
		for i := range 4 {
			tr := newTrial(t, other, b.ID, running("w"))
			if err := other.Finish(ctx, tr.ID, "w", storage.Complete, float64(99+i)); err != nil {
				t.Fatal(err)
			}
		}
		got := getTrials(t, e.st, b.ID)
		if len(got) != 4 {
			t.Fatalf("study %d (the deleted one was %d) lists %d trials, want 4", b.ID, a.ID, len(got))
		}
		for i, tr := range got {
			if tr.Value != float64(99+i) || tr.StudyID != b.ID {
				t.Errorf("study %d (the deleted one was %d): trial %d is study %d's, valued %v", b.ID, a.ID, i, tr.StudyID, tr.Value)
			}
		}
	}},
	{"TrialByNumber finds a trial of its study only", func(t *testing.T, e *env) {
		ctx := t.Context()
		a := newStudy(t, e.st, storage.NewStudy{Name: "a"})
		b := newStudy(t, e.st, storage.NewStudy{Name: "b"})
		var ta []*storage.Trial
		for range 3 {
			ta = append(ta, newTrial(t, e.st, a.ID, storage.NewTrial{State: storage.Complete, Value: 1, UserAttrs: map[string]string{"k": "v"}}))
			newTrial(t, e.st, b.ID, running("w"))
		}
		for n, created := range ta {
			got, err := e.st.TrialByNumber(ctx, a.ID, n)
			if err != nil {
				t.Fatal(err)
			}
			if got.Number != n || got.ID != created.ID {
				t.Errorf("TrialByNumber(%d) = trial %d number %d, want trial %d", n, got.ID, got.Number, created.ID)
			}
			if d := trialDiff(got, getTrial(t, e.st, created.ID)); d != "" {
				t.Errorf("TrialByNumber(%d): %s", n, d)
			}
		}
		_, err := e.st.TrialByNumber(ctx, a.ID, 3)
		wantErr(t, "TrialByNumber past the last", err, storage.ErrNotFound)
	}},
	{"Renew renews a lease on the database's clock and refuses another worker", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		tr := newTrial(t, e.st, st.ID, running("w1"))
		at, err := e.st.Renew(ctx, tr.ID, "w1")
		if err != nil {
			t.Fatal(err)
		}
		if got := getTrial(t, e.st, tr.ID); !got.HeartbeatAt.Equal(at) || at.Before(tr.HeartbeatAt) {
			t.Errorf("Renew returned %v; the trial's heartbeat is %v, its first %v", at, got.HeartbeatAt, tr.HeartbeatAt)
		}
		_, err = e.st.Renew(ctx, tr.ID, "w2")
		wantErr(t, "Renew by another worker", err, storage.ErrLeaseLost)
		_, err = e.st.Renew(ctx, 987654, "w1")
		wantErr(t, "Renew of no trial", err, storage.ErrNotFound)
		if err := e.st.Finish(ctx, tr.ID, "w1", storage.Complete, 1); err != nil {
			t.Fatal(err)
		}
		_, err = e.st.Renew(ctx, tr.ID, "w1")
		wantErr(t, "Renew of a complete trial", err, storage.ErrLeaseLost)
	}},
	{"a waiting trial is claimed by one worker", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		w := newTrial(t, e.st, st.ID, waiting(map[string]storage.Param{"x": uniform(0.5, 0, 1)}))
		if err := e.st.SetTrialAttr(ctx, w.ID, "anyone", storage.UserAttr, "queued-by", "cli"); err != nil {
			t.Errorf("SetTrialAttr on a waiting trial: %v", err)
		}
		if err := e.st.Claim(ctx, w.ID, "w1"); err != nil {
			t.Fatal(err)
		}
		wantErr(t, "second Claim", e.st.Claim(ctx, w.ID, "w2"), storage.ErrNotUpdatable)
		wantErr(t, "Heartbeat by the loser", e.st.Heartbeat(ctx, w.ID, "w2"), storage.ErrLeaseLost)
		got := getTrial(t, e.st, w.ID)
		if got.State != storage.Running || got.Worker != "w1" || got.StartedAt.IsZero() || got.HeartbeatAt.IsZero() || got.UserAttrs["queued-by"] != "cli" {
			t.Errorf("claimed trial %+v", got)
		}
		_, err := e.st.ClaimWaiting(ctx, st.ID, "w2")
		wantErr(t, "ClaimWaiting with none waiting", err, storage.ErrNotFound)
		// ClaimWaiting takes the lowest number first.
		w2 := newTrial(t, e.st, st.ID, waiting(nil))
		w3 := newTrial(t, e.st, st.ID, waiting(nil))
		for _, want := range []*storage.Trial{w2, w3} {
			got, err := e.st.ClaimWaiting(ctx, st.ID, "w3")
			if err != nil || got.ID != want.ID || got.State != storage.Running || got.Worker != "w3" {
				t.Errorf("ClaimWaiting = %+v, %v; want trial %d running under w3", got, err, want.ID)
			}
		}
	}},
	{"a heartbeat renews the lease by the database clock", func(t *testing.T, e *env) {
		ctx := t.Context()
		st := newStudy(t, e.st, storage.NewStudy{})
		tr := getTrial(t, e.st, newTrial(t, e.st, st.ID, running("w")).ID)
		time.Sleep(20 * time.Millisecond)
		if err := e.st.Heartbeat(ctx, tr.ID, "w"); err != nil {
			t.Fatal(err)
		}
		got := getTrial(t, e.st, tr.ID)
		if !got.HeartbeatAt.After(tr.HeartbeatAt) {
			t.Errorf("heartbeat at %v, not after the first %v", got.HeartbeatAt, tr.HeartbeatAt)
		}
		if d := time.Since(got.HeartbeatAt); d < -time.Minute || d > time.Minute {
			t.Errorf("heartbeat at %v is %v away from now", got.HeartbeatAt, d)
		}
	}},
}

// rawCount runs a count query on the env's database beside the store.
func rawCount(t testing.TB, e *env, query string) int {
	t.Helper()
	db := rawDB(t, e)
	var n int
	if err := db.QueryRowContext(t.Context(), query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
