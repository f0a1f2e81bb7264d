package storage_test

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/c-bata/goptuna"
	"github.com/c-bata/goptuna/medianstopping"
	"github.com/c-bata/goptuna/successivehalving"
	"github.com/c-bata/goptuna/tpe"

	"github.com/floodtune/floodtune/storage"
)

// The adapter must behave as Goptuna's own storages do (InMemoryStorage,
// rdb.Storage): these tests go through goptuna.Storage only.
func TestGoptunaConformance(t *testing.T) {
	runConformance(t, goptunaTests)
}

// adapter returns the goptuna.Storage of worker on the env's store.
func adapter(t testing.TB, e *env, worker string) goptuna.Storage {
	return storage.NewGoptuna(t.Context(), e.st, worker)
}

func gStudy(t testing.TB, g goptuna.Storage, name string) int {
	t.Helper()
	id, err := g.CreateNewStudy(name)
	if err != nil {
		t.Fatalf("CreateNewStudy(%q): %v", name, err)
	}
	return id
}

func gTrial(t testing.TB, g goptuna.Storage, studyID int) int {
	t.Helper()
	id, err := g.CreateNewTrial(studyID)
	if err != nil {
		t.Fatalf("CreateNewTrial(%d): %v", studyID, err)
	}
	return id
}

func gGet(t testing.TB, g goptuna.Storage, trialID int) goptuna.FrozenTrial {
	t.Helper()
	ft, err := g.GetTrial(trialID)
	if err != nil {
		t.Fatalf("GetTrial(%d): %v", trialID, err)
	}
	return ft
}

// must fails t when err is not nil.
func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// completeTrial creates a trial, sets its value and completes it.
func completeTrial(t testing.TB, g goptuna.Storage, studyID int, value float64) int {
	t.Helper()
	id := gTrial(t, g, studyID)
	must(t, "SetTrialValue", g.SetTrialValue(id, value))
	must(t, "SetTrialState(complete)", g.SetTrialState(id, goptuna.TrialStateComplete))
	return id
}

// goptunaParam is a parameter as Goptuna sets it and reads it back.
type goptunaParam struct {
	name     string
	dist     interface{}
	internal float64
	external interface{}
}

// goptunaParams has a parameter of each of Goptuna v0.9.0's distributions.
var goptunaParams = []goptunaParam{
	{"lr", goptuna.LogUniformDistribution{Low: 1e-5, High: 1}, 1e-3, 1e-3},
	{"flood", goptuna.UniformDistribution{Low: 0, High: 1}, math.Nextafter(0.3, 1), math.Nextafter(0.3, 1)},
	{"negative", goptuna.UniformDistribution{Low: -1e6, High: -1e-6}, -12345.678901234567, -12345.678901234567},
	{"layers", goptuna.IntUniformDistribution{Low: -3, High: 10}, 7, 7},
	{"batch", goptuna.StepIntUniformDistribution{Low: 16, High: 256, Step: 16}, 64, 64},
	{"dropout", goptuna.DiscreteUniformDistribution{Low: 0, High: 1, Q: 0.25}, 0.75, 0.75},
	{"activation", goptuna.CategoricalDistribution{Choices: []string{"relu", "tanh", "it's \"gelu\""}}, 2, "it's \"gelu\""},
}

// frozenWith returns a trial of Goptuna's with every parameter of
// goptunaParams.
func frozenWith(state goptuna.TrialState) goptuna.FrozenTrial {
	ft := goptuna.FrozenTrial{
		ID: -1, Number: -1, State: state,
		IntermediateValues: map[int]float64{},
		DatetimeStart:      time.Now(),
		InternalParams:     map[string]float64{},
		Params:             map[string]interface{}{},
		Distributions:      map[string]interface{}{},
		UserAttrs:          map[string]string{},
		SystemAttrs:        map[string]string{},
	}
	for _, p := range goptunaParams {
		ft.InternalParams[p.name], ft.Params[p.name], ft.Distributions[p.name] = p.internal, p.external, p.dist
	}
	return ft
}

// frozenDiff describes how two trials of Goptuna differ in what a storage
// keeps (not ids, numbers and times), "" when they do not.
func frozenDiff(got, want goptuna.FrozenTrial) string {
	var d []string
	if got.State != want.State {
		d = append(d, "State "+got.State.String()+", want "+want.State.String())
	}
	if !sameFloat(got.Value, want.Value) {
		d = append(d, "Value differs")
	}
	if !sameFloatMap(got.IntermediateValues, want.IntermediateValues) {
		d = append(d, "IntermediateValues differ")
	}
	if !sameFloatMap(got.InternalParams, want.InternalParams) {
		d = append(d, "InternalParams differ")
	}
	if !(len(got.Params) == 0 && len(want.Params) == 0) && !reflect.DeepEqual(got.Params, want.Params) {
		d = append(d, "Params differ")
	}
	if !(len(got.Distributions) == 0 && len(want.Distributions) == 0) && !reflect.DeepEqual(got.Distributions, want.Distributions) {
		d = append(d, "Distributions differ")
	}
	if !sameStrings(got.UserAttrs, want.UserAttrs) {
		d = append(d, "UserAttrs differ")
	}
	if !sameStrings(got.SystemAttrs, want.SystemAttrs) {
		d = append(d, "SystemAttrs differ")
	}
	if len(d) == 0 {
		return ""
	}
	return strings.Join(d, "; ")
}

var goptunaTests = []conformanceTest{
	{"a new study minimises and is found by its name and id", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		id := gStudy(t, g, "mnist flooding")
		if got, err := g.GetStudyIDFromName("mnist flooding"); err != nil || got != id {
			t.Errorf("GetStudyIDFromName = %d, %v; want %d", got, err, id)
		}
		if got, err := g.GetStudyNameFromID(id); err != nil || got != "mnist flooding" {
			t.Errorf("GetStudyNameFromID = %q, %v; want %q", got, err, "mnist flooding")
		}
		if got, err := g.GetStudyDirection(id); err != nil || got != goptuna.StudyDirectionMinimize {
			t.Errorf("GetStudyDirection = %v, %v; want minimize", got, err)
		}
		if ua, err := g.GetStudyUserAttrs(id); err != nil || len(ua) != 0 {
			t.Errorf("GetStudyUserAttrs = %v, %v; want none", ua, err)
		}
		if sa, err := g.GetStudySystemAttrs(id); err != nil || len(sa) != 0 {
			t.Errorf("GetStudySystemAttrs = %v, %v; want none", sa, err)
		}
	}},
	{"a study without a name gets a generated one", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		a, b := gStudy(t, g, ""), gStudy(t, g, "")
		if a == b {
			t.Fatalf("two studies without a name have the same id %d", a)
		}
		na, err1 := g.GetStudyNameFromID(a)
		nb, err2 := g.GetStudyNameFromID(b)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{na, nb} {
			if !strings.HasPrefix(n, goptuna.DefaultStudyNamePrefix) || n == goptuna.DefaultStudyNamePrefix {
				t.Errorf("generated name %q, want %q and something unique", n, goptuna.DefaultStudyNamePrefix+"...")
			}
		}
		if na == nb {
			t.Errorf("both generated names are %q", na)
		}
	}},
	{"a study name in use is refused", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		gStudy(t, g, "twice")
		if _, err := g.CreateNewStudy("twice"); !errors.Is(err, storage.ErrStudyExists) {
			t.Errorf("second CreateNewStudy: %v, want ErrStudyExists", err)
		}
	}},
	{"an unknown study name or id is an error", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		if id, err := g.GetStudyIDFromName("nobody"); err == nil {
			t.Errorf("GetStudyIDFromName(unknown) = %d, nil; want an error", id)
		} else if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetStudyIDFromName(unknown): %v, want ErrNotFound", err)
		}
		if _, err := g.GetStudyNameFromID(987654); err == nil {
			t.Error("GetStudyNameFromID(unknown): no error")
		}
		if _, err := g.GetStudyDirection(987654); err == nil {
			t.Error("GetStudyDirection(unknown): no error")
		}
		if _, err := g.GetStudyIDFromTrialID(987654); err == nil {
			t.Error("GetStudyIDFromTrialID(unknown): no error")
		}
		if _, err := g.GetTrial(987654); err == nil {
			t.Error("GetTrial(unknown): no error")
		}
		if _, err := g.GetTrialSystemAttrs(987654); err == nil {
			t.Error("GetTrialSystemAttrs(unknown): no error")
		}
		if _, err := g.GetTrialUserAttrs(987654); err == nil {
			t.Error("GetTrialUserAttrs(unknown): no error")
		}
		if _, err := g.GetTrialParams(987654); err == nil {
			t.Error("GetTrialParams(unknown): no error")
		}
		if _, err := g.GetTrialNumberFromID(987654); err == nil {
			t.Error("GetTrialNumberFromID(unknown): no error")
		}
		if _, err := g.CreateNewTrial(987654); err == nil {
			t.Error("CreateNewTrial(unknown study): no error")
		}
		if err := g.SetStudyDirection(987654, goptuna.StudyDirectionMaximize); err == nil {
			t.Error("SetStudyDirection(unknown): no error")
		}
		if err := g.SetStudyUserAttr(987654, "k", "v"); err == nil {
			t.Error("SetStudyUserAttr(unknown): no error")
		}
		if err := g.DeleteStudy(987654); err == nil {
			t.Error("DeleteStudy(unknown): no error")
		}
	}},
	{"the direction is set and read back", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		id := gStudy(t, g, "s")
		for _, dir := range []goptuna.StudyDirection{goptuna.StudyDirectionMaximize, goptuna.StudyDirectionMinimize, goptuna.StudyDirectionMaximize} {
			must(t, "SetStudyDirection", g.SetStudyDirection(id, dir))
			if got, err := g.GetStudyDirection(id); err != nil || got != dir {
				t.Errorf("after SetStudyDirection(%v): GetStudyDirection = %v, %v", dir, got, err)
			}
		}
	}},
	{"study attributes are kept apart by kind and overwritten by key", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		id, other := gStudy(t, g, "s"), gStudy(t, g, "other")
		must(t, "SetStudyUserAttr", g.SetStudyUserAttr(id, "dataset", "mnist"))
		must(t, "SetStudyUserAttr", g.SetStudyUserAttr(id, "owner", "ann"))
		must(t, "SetStudyUserAttr", g.SetStudyUserAttr(id, "owner", "bob"))
		must(t, "SetStudySystemAttr", g.SetStudySystemAttr(id, "dataset", "system's"))
		must(t, "SetStudySystemAttr", g.SetStudySystemAttr(other, "x", "y"))
		ua, err := g.GetStudyUserAttrs(id)
		must(t, "GetStudyUserAttrs", err)
		if want := map[string]string{"dataset": "mnist", "owner": "bob"}; !maps.Equal(ua, want) {
			t.Errorf("user attrs %v, want %v", ua, want)
		}
		sa, err := g.GetStudySystemAttrs(id)
		must(t, "GetStudySystemAttrs", err)
		if want := map[string]string{"dataset": "system's"}; !maps.Equal(sa, want) {
			t.Errorf("system attrs %v, want %v", sa, want)
		}
	}},
	{"a deleted study and its trials are gone", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		id, kept := gStudy(t, g, "doomed"), gStudy(t, g, "kept")
		doomedTrial := completeTrial(t, g, id, 1)
		keptTrial := completeTrial(t, g, kept, 2)
		gGet(t, g, doomedTrial) // read before it goes
		must(t, "DeleteStudy", g.DeleteStudy(id))
		if _, err := g.GetStudyIDFromName("doomed"); err == nil {
			t.Error("the deleted study is still found by name")
		}
		if _, err := g.GetTrial(doomedTrial); err == nil {
			t.Error("a trial of the deleted study is still there")
		}
		if _, err := g.GetStudyIDFromTrialID(doomedTrial); err == nil {
			t.Error("GetStudyIDFromTrialID finds the deleted study")
		}
		if ts, err := g.GetAllTrials(id); err != nil || len(ts) != 0 {
			t.Errorf("GetAllTrials(deleted) = %d trials, %v", len(ts), err)
		}
		if ft := gGet(t, g, keptTrial); ft.Value != 2 {
			t.Errorf("the other study's trial has value %v, want 2", ft.Value)
		}
		if err := g.DeleteStudy(id); err == nil {
			t.Error("deleting the study twice: no error")
		}
		// The name is free again.
		gStudy(t, g, "doomed")
	}},
	{"a trial knows its study", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		a, b := gStudy(t, g, "a"), gStudy(t, g, "b")
		ta, tb := gTrial(t, g, a), gTrial(t, g, b)
		for trial, want := range map[int]int{ta: a, tb: b} {
			if got, err := g.GetStudyIDFromTrialID(trial); err != nil || got != want {
				t.Errorf("GetStudyIDFromTrialID(%d) = %d, %v; want %d", trial, got, err, want)
			}
		}
	}},
	{"study summaries show each study with its best trial", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		lo, hi, none := gStudy(t, g, "lo"), gStudy(t, g, "hi"), gStudy(t, g, "none")
		must(t, "SetStudyDirection", g.SetStudyDirection(hi, goptuna.StudyDirectionMaximize))
		must(t, "SetStudyUserAttr", g.SetStudyUserAttr(lo, "k", "v"))
		must(t, "SetStudySystemAttr", g.SetStudySystemAttr(hi, "s", "t"))
		var bestLo, bestHi int
		for _, v := range []float64{3, 1, 2} {
			if id := completeTrial(t, g, lo, v); v == 1 {
				bestLo = id
			}
			if id := completeTrial(t, g, hi, v); v == 3 {
				bestHi = id
			}
		}
		gTrial(t, g, none) // running: no best
		sums, err := g.GetAllStudySummaries()
		must(t, "GetAllStudySummaries", err)
		if len(sums) != 3 {
			t.Fatalf("%d summaries, want 3", len(sums))
		}
		byID := map[int]goptuna.StudySummary{}
		for _, s := range sums {
			byID[s.ID] = s
			if s.DatetimeStart.IsZero() {
				t.Errorf("study %q: DatetimeStart is zero", s.Name)
			}
		}
		for _, c := range []struct {
			id        int
			name      string
			dir       goptuna.StudyDirection
			best      int
			bestValue float64
			ua, sa    map[string]string
		}{
			{lo, "lo", goptuna.StudyDirectionMinimize, bestLo, 1, map[string]string{"k": "v"}, nil},
			{hi, "hi", goptuna.StudyDirectionMaximize, bestHi, 3, nil, map[string]string{"s": "t"}},
			{none, "none", goptuna.StudyDirectionMinimize, 0, 0, nil, nil},
		} {
			s, ok := byID[c.id]
			if !ok {
				t.Errorf("no summary of study %q", c.name)
				continue
			}
			if s.Name != c.name || s.Direction != c.dir || !sameStrings(s.UserAttrs, c.ua) || !sameStrings(s.SystemAttrs, c.sa) {
				t.Errorf("summary of %q = %+v", c.name, s)
			}
			if s.BestTrial.ID != c.best || s.BestTrial.Value != c.bestValue {
				t.Errorf("summary of %q: best trial %d with value %v, want %d with %v", c.name, s.BestTrial.ID, s.BestTrial.Value, c.best, c.bestValue)
			}
			if c.best != 0 && s.BestTrial.State != goptuna.TrialStateComplete {
				t.Errorf("summary of %q: best trial is %v", c.name, s.BestTrial.State)
			}
		}
	}},
	{"new trials run, numbered from 0 in each study", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		a, b := gStudy(t, g, "a"), gStudy(t, g, "b")
		before := time.Now().Add(-time.Minute)
		for i := range 3 {
			for _, study := range []int{a, b} {
				id := gTrial(t, g, study)
				ft := gGet(t, g, id)
				if ft.ID != id || ft.StudyID != study || ft.Number != i || ft.State != goptuna.TrialStateRunning || ft.Value != 0 {
					t.Errorf("new trial %+v, want id %d, study %d, number %d, running, value 0", ft, id, study, i)
				}
				if ft.DatetimeStart.Before(before) || !ft.DatetimeComplete.IsZero() {
					t.Errorf("new trial started %v, completed %v", ft.DatetimeStart, ft.DatetimeComplete)
				}
				if len(ft.Params)+len(ft.InternalParams)+len(ft.Distributions)+len(ft.IntermediateValues)+len(ft.UserAttrs)+len(ft.SystemAttrs) != 0 {
					t.Errorf("new trial has details: %+v", ft)
				}
				if n, err := g.GetTrialNumberFromID(id); err != nil || n != i {
					t.Errorf("GetTrialNumberFromID = %d, %v; want %d", n, err, i)
				}
			}
		}
	}},
	{"parameters of every distribution are read back", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study := gStudy(t, g, "s")
		id := gTrial(t, g, study)
		for _, p := range goptunaParams {
			must(t, "SetTrialParam("+p.name+")", g.SetTrialParam(id, p.name, p.internal, p.dist))
		}
		ext, err := g.GetTrialParams(id)
		must(t, "GetTrialParams", err)
		ft := gGet(t, g, id)
		for _, p := range goptunaParams {
			t.Run(p.name, func(t *testing.T) {
				if got, err := g.GetTrialParam(id, p.name); err != nil || got != p.internal {
					t.Errorf("GetTrialParam = %v, %v; want %v", got, err, p.internal)
				}
				if !reflect.DeepEqual(ext[p.name], p.external) {
					t.Errorf("GetTrialParams[%q] = %#v, want %#v", p.name, ext[p.name], p.external)
				}
				if !reflect.DeepEqual(ft.Params[p.name], p.external) || ft.InternalParams[p.name] != p.internal {
					t.Errorf("GetTrial: param %#v, internal %v", ft.Params[p.name], ft.InternalParams[p.name])
				}
				if !reflect.DeepEqual(ft.Distributions[p.name], p.dist) {
					t.Errorf("GetTrial: distribution %#v, want %#v", ft.Distributions[p.name], p.dist)
				}
			})
		}
		if _, err := g.GetTrialParam(id, "nope"); err == nil {
			t.Error("GetTrialParam(unknown name): no error")
		}
		// Setting a parameter again replaces it.
		must(t, "SetTrialParam again", g.SetTrialParam(id, "flood", 0.5, goptuna.UniformDistribution{Low: 0, High: 2}))
		if got, err := g.GetTrialParam(id, "flood"); err != nil || got != 0.5 {
			t.Errorf("after a second SetTrialParam: %v, %v", got, err)
		}
		if _, err := g.GetTrial(id); err != nil {
			t.Error(err)
		}
	}},
	{"values, intermediate values and attributes of a running trial are read back", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study := gStudy(t, g, "s")
		id := gTrial(t, g, study)
		must(t, "SetTrialValue", g.SetTrialValue(id, 0.5))
		must(t, "SetTrialValue again", g.SetTrialValue(id, -1.25))
		want := map[int]float64{0: 0.9, 1: 0.7, 7: 0.25, 3: math.NaN(), 4: math.Inf(1)}
		for step, v := range want {
			must(t, "SetTrialIntermediateValue", g.SetTrialIntermediateValue(id, step, v))
		}
		must(t, "SetTrialUserAttr", g.SetTrialUserAttr(id, "note", "it's \"quoted\""))
		must(t, "SetTrialUserAttr", g.SetTrialUserAttr(id, "k", "v1"))
		must(t, "SetTrialUserAttr", g.SetTrialUserAttr(id, "k", "v2"))
		must(t, "SetTrialSystemAttr", g.SetTrialSystemAttr(id, "k", "sys"))
		ft := gGet(t, g, id)
		if ft.Value != -1.25 || !sameFloatMap(ft.IntermediateValues, want) {
			t.Errorf("value %v, intermediate %v; want -1.25, %v", ft.Value, ft.IntermediateValues, want)
		}
		wantUA, wantSA := map[string]string{"note": "it's \"quoted\"", "k": "v2"}, map[string]string{"k": "sys"}
		if !maps.Equal(ft.UserAttrs, wantUA) || !maps.Equal(ft.SystemAttrs, wantSA) {
			t.Errorf("attrs %v / %v, want %v / %v", ft.UserAttrs, ft.SystemAttrs, wantUA, wantSA)
		}
		if ua, err := g.GetTrialUserAttrs(id); err != nil || !maps.Equal(ua, wantUA) {
			t.Errorf("GetTrialUserAttrs = %v, %v", ua, err)
		}
		if sa, err := g.GetTrialSystemAttrs(id); err != nil || !maps.Equal(sa, wantSA) {
			t.Errorf("GetTrialSystemAttrs = %v, %v", sa, err)
		}
	}},
	{"a running trial finishes in each final state", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study := gStudy(t, g, "s")
		for _, state := range []goptuna.TrialState{goptuna.TrialStateComplete, goptuna.TrialStatePruned, goptuna.TrialStateFail} {
			t.Run(state.String(), func(t *testing.T) {
				id := gTrial(t, g, study)
				must(t, "SetTrialValue", g.SetTrialValue(id, 4.5))
				must(t, "SetTrialState", g.SetTrialState(id, state))
				ft := gGet(t, g, id)
				if ft.State != state || ft.Value != 4.5 || ft.DatetimeComplete.IsZero() || ft.DatetimeComplete.Before(ft.DatetimeStart) {
					t.Errorf("finished trial: state %v, value %v, started %v, completed %v", ft.State, ft.Value, ft.DatetimeStart, ft.DatetimeComplete)
				}
			})
		}
	}},
	{"a finished trial cannot be updated", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study := gStudy(t, g, "s")
		id := gTrial(t, g, study)
		must(t, "SetTrialParam", g.SetTrialParam(id, "x", 0.5, goptuna.UniformDistribution{Low: 0, High: 1}))
		must(t, "SetTrialIntermediateValue", g.SetTrialIntermediateValue(id, 0, 2))
		must(t, "SetTrialUserAttr", g.SetTrialUserAttr(id, "k", "v"))
		must(t, "SetTrialValue", g.SetTrialValue(id, 1))
		must(t, "SetTrialState", g.SetTrialState(id, goptuna.TrialStateComplete))
		before := gGet(t, g, id)
		for _, c := range []struct {
			name string
			call func() error
		}{
			{"SetTrialValue", func() error { return g.SetTrialValue(id, 9) }},
			{"SetTrialIntermediateValue", func() error { return g.SetTrialIntermediateValue(id, 1, 9) }},
			{"SetTrialParam", func() error { return g.SetTrialParam(id, "y", 0.25, goptuna.UniformDistribution{Low: 0, High: 1}) }},
			{"SetTrialUserAttr", func() error { return g.SetTrialUserAttr(id, "k", "changed") }},
			{"SetTrialSystemAttr", func() error { return g.SetTrialSystemAttr(id, "k", "changed") }},
			{"SetTrialState(pruned)", func() error { return g.SetTrialState(id, goptuna.TrialStatePruned) }},
			{"SetTrialState(running)", func() error { return g.SetTrialState(id, goptuna.TrialStateRunning) }},
			{"SetTrialState(complete) again", func() error { return g.SetTrialState(id, goptuna.TrialStateComplete) }},
		} {
			t.Run(c.name, func(t *testing.T) {
				if err := c.call(); err != goptuna.ErrTrialCannotBeUpdated {
					t.Errorf("%s on a complete trial: %v, want exactly goptuna.ErrTrialCannotBeUpdated", c.name, err)
				}
				if d := frozenDiff(gGet(t, g, id), before); d != "" {
					t.Errorf("%s changed the complete trial: %s", c.name, d)
				}
			})
		}
	}},
	{"a running trial of another worker cannot be updated", func(t *testing.T, e *env) {
		g1, g2 := adapter(t, e, "worker-1"), adapter(t, e, "worker-2")
		study := gStudy(t, g1, "s")
		id := gTrial(t, g2, study)
		for _, c := range []struct {
			name string
			call func() error
		}{
			{"SetTrialValue", func() error { return g1.SetTrialValue(id, 9) }},
			{"SetTrialIntermediateValue", func() error { return g1.SetTrialIntermediateValue(id, 1, 9) }},
			{"SetTrialParam", func() error { return g1.SetTrialParam(id, "y", 0.25, goptuna.UniformDistribution{Low: 0, High: 1}) }},
			{"SetTrialUserAttr", func() error { return g1.SetTrialUserAttr(id, "k", "v") }},
			{"SetTrialState(complete)", func() error { return g1.SetTrialState(id, goptuna.TrialStateComplete) }},
		} {
			if err := c.call(); err != goptuna.ErrTrialCannotBeUpdated {
				t.Errorf("%s by worker-1 on worker-2's trial: %v, want exactly goptuna.ErrTrialCannotBeUpdated", c.name, err)
			}
		}
		if ft := gGet(t, g2, id); ft.State != goptuna.TrialStateRunning || len(ft.Params)+len(ft.IntermediateValues)+len(ft.UserAttrs) != 0 || ft.Value != 0 {
			t.Errorf("worker-2's trial was changed: %+v", ft)
		}
	}},
	{"a cloned waiting trial keeps its fixed parameters and is claimed once", func(t *testing.T, e *env) {
		g1, g2 := adapter(t, e, "worker-1"), adapter(t, e, "worker-2")
		study := gStudy(t, g1, "s")
		base := frozenWith(goptuna.TrialStateWaiting)
		base.InternalParams, base.Params, base.Distributions = map[string]float64{}, map[string]interface{}{}, map[string]interface{}{}
		base.SystemAttrs["fixed_params"] = `{"x":0.25,"activation":1}`
		id, err := g1.CloneTrial(study, base)
		must(t, "CloneTrial(waiting)", err)
		ft := gGet(t, g1, id)
		if ft.State != goptuna.TrialStateWaiting || ft.Number != 0 || ft.SystemAttrs["fixed_params"] != `{"x":0.25,"activation":1}` {
			t.Errorf("cloned waiting trial %+v", ft)
		}
		must(t, "first claim", g1.SetTrialState(id, goptuna.TrialStateRunning))
		if err := g2.SetTrialState(id, goptuna.TrialStateRunning); err != goptuna.ErrTrialCannotBeUpdated {
			t.Errorf("second claim by another worker: %v, want exactly goptuna.ErrTrialCannotBeUpdated", err)
		}
		if err := g1.SetTrialState(id, goptuna.TrialStateRunning); err != goptuna.ErrTrialCannotBeUpdated {
			t.Errorf("second claim by the same worker: %v, want exactly goptuna.ErrTrialCannotBeUpdated", err)
		}
		// The claimer runs it; the other worker cannot write to it.
		must(t, "SetTrialParam by the claimer", g1.SetTrialParam(id, "x", 0.25, goptuna.UniformDistribution{Low: 0, High: 1}))
		if err := g2.SetTrialValue(id, 1); err != goptuna.ErrTrialCannotBeUpdated {
			t.Errorf("SetTrialValue by the worker that lost the claim: %v", err)
		}
		if ft := gGet(t, g1, id); ft.State != goptuna.TrialStateRunning || ft.DatetimeStart.IsZero() {
			t.Errorf("claimed trial: %v, started %v", ft.State, ft.DatetimeStart)
		}
		if got := getTrial(t, e.st, int64(id)); got.Worker != "worker-1" {
			t.Errorf("claimed trial runs under %q, want worker-1", got.Worker)
		}
	}},
	{"a cloned trial round-trips exactly", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study := gStudy(t, g, "s")
		for i, state := range []goptuna.TrialState{goptuna.TrialStateComplete, goptuna.TrialStatePruned, goptuna.TrialStateFail, goptuna.TrialStateRunning} {
			t.Run(state.String(), func(t *testing.T) {
				base := frozenWith(state)
				base.Value = 0.125 + float64(i)
				base.IntermediateValues = map[int]float64{0: 1.5, 1: 0.75, 3: math.NaN(), 10: math.Inf(-1)}
				base.UserAttrs = map[string]string{"note": "it's \"fine\"", "unicode": "洪水 🌊"}
				base.SystemAttrs = map[string]string{"seed": "7", "fixed_params": `{"x":1}`}
				if state.IsFinished() {
					base.DatetimeComplete = time.Now()
				}
				id, err := g.CloneTrial(study, base)
				must(t, "CloneTrial", err)
				got := gGet(t, g, id)
				want := base
				if state == goptuna.TrialStateRunning {
					want.Value = 0 // a running trial has no value yet
				}
				if d := frozenDiff(got, want); d != "" {
					t.Errorf("cloned %v trial: %s\n got %+v\nwant %+v", state, d, got, want)
				}
				if got.StudyID != study || got.Number != i || got.ID != id {
					t.Errorf("cloned trial: id %d study %d number %d, want %d %d %d", got.ID, got.StudyID, got.Number, id, study, i)
				}
				if got.DatetimeStart.IsZero() || state.IsFinished() == got.DatetimeComplete.IsZero() {
					t.Errorf("cloned %v trial: started %v, completed %v", state, got.DatetimeStart, got.DatetimeComplete)
				}
				all, err := g.GetAllTrials(study)
				must(t, "GetAllTrials", err)
				if len(all) != i+1 || frozenDiff(all[i], want) != "" {
					t.Errorf("GetAllTrials does not hold the cloned trial as GetTrial does")
				}
				if state == goptuna.TrialStateRunning {
					// It runs under the adapter's worker.
					must(t, "SetTrialValue on the cloned running trial", g.SetTrialValue(id, 3))
				}
			})
		}
	}},
	{"the best trial is the best complete one in the study's direction", func(t *testing.T, e *env) {
		for _, c := range []struct {
			dir  goptuna.StudyDirection
			best float64
		}{
			{goptuna.StudyDirectionMinimize, -2},
			{goptuna.StudyDirectionMaximize, 7},
		} {
			t.Run(string(c.dir), func(t *testing.T) {
				g := adapter(t, e, "worker-1")
				study := gStudy(t, g, string(c.dir))
				must(t, "SetStudyDirection", g.SetStudyDirection(study, c.dir))
				if _, err := g.GetBestTrial(study); err != goptuna.ErrNoCompletedTrials {
					t.Errorf("GetBestTrial of an empty study: %v, want exactly goptuna.ErrNoCompletedTrials", err)
				}
				// Trials that are not complete never win, whatever their value.
				for _, state := range []goptuna.TrialState{goptuna.TrialStatePruned, goptuna.TrialStateFail, goptuna.TrialStateRunning} {
					id := gTrial(t, g, study)
					must(t, "SetTrialValue", g.SetTrialValue(id, map[goptuna.StudyDirection]float64{goptuna.StudyDirectionMinimize: -100, goptuna.StudyDirectionMaximize: 100}[c.dir]))
					if state != goptuna.TrialStateRunning {
						must(t, "SetTrialState", g.SetTrialState(id, state))
					}
				}
				if _, err := g.GetBestTrial(study); err != goptuna.ErrNoCompletedTrials {
					t.Errorf("GetBestTrial without a complete trial: %v, want exactly goptuna.ErrNoCompletedTrials", err)
				}
				var bestID int
				for _, v := range []float64{3, 7, -2, 0.5} {
					if id := completeTrial(t, g, study, v); v == c.best {
						bestID = id
					}
				}
				best, err := g.GetBestTrial(study)
				if err != nil || best.ID != bestID || best.Value != c.best || best.State != goptuna.TrialStateComplete {
					t.Errorf("GetBestTrial = trial %d value %v (%v), %v; want trial %d value %v", best.ID, best.Value, best.State, err, bestID, c.best)
				}
			})
		}
	}},
	{"all trials come back in order with their states", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study, other := gStudy(t, g, "s"), gStudy(t, g, "other")
		gTrial(t, g, other)
		states := []goptuna.TrialState{goptuna.TrialStateComplete, goptuna.TrialStateRunning, goptuna.TrialStatePruned, goptuna.TrialStateFail, goptuna.TrialStateWaiting}
		for _, s := range states {
			base := frozenWith(s)
			if s.IsFinished() {
				base.DatetimeComplete = time.Now()
			}
			_, err := g.CloneTrial(study, base)
			must(t, "CloneTrial", err)
		}
		all, err := g.GetAllTrials(study)
		must(t, "GetAllTrials", err)
		if len(all) != len(states) {
			t.Fatalf("%d trials, want %d", len(all), len(states))
		}
		for i, ft := range all {
			if ft.Number != i || ft.State != states[i] || ft.StudyID != study || len(ft.Params) != len(goptunaParams) {
				t.Errorf("trial %d: number %d, state %v, study %d, %d params", i, ft.Number, ft.State, ft.StudyID, len(ft.Params))
			}
		}
	}},
	{"a TPE study minimises a quadratic over 30 trials", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study, err := goptuna.CreateStudy("quadratic",
			goptuna.StudyOptionStorage(g),
			goptuna.StudyOptionSampler(tpe.NewSampler(tpe.SamplerOptionSeed(1))),
			goptuna.StudyOptionLogger(nil))
		must(t, "CreateStudy", err)
		// No budget: CreateNewTrial never fails, so Optimize ends.
		must(t, "Optimize", study.Optimize(func(tr goptuna.Trial) (float64, error) {
			x, err := tr.SuggestFloat("x", -10, 10)
			return (x - 2) * (x - 2), err
		}, 30))
		trials, err := study.GetTrials()
		must(t, "GetTrials", err)
		if len(trials) != 30 {
			t.Fatalf("%d trials, want 30", len(trials))
		}
		lowest := math.Inf(1)
		for i, tr := range trials {
			x, ok := tr.Params["x"].(float64)
			if tr.Number != i || tr.State != goptuna.TrialStateComplete || !ok || x < -10 || x > 10 || tr.Value != (x-2)*(x-2) {
				t.Errorf("trial %d: number %d, %v, x %v, value %v", i, tr.Number, tr.State, tr.Params["x"], tr.Value)
			}
			lowest = min(lowest, tr.Value)
		}
		best, err := study.GetBestValue()
		must(t, "GetBestValue", err)
		if best != lowest {
			t.Errorf("best value %v, but the lowest of the trials is %v", best, lowest)
		}
		if best > 1 {
			t.Errorf("best value %v after 30 TPE trials of (x-2)²: the sampler does not see the trials", best)
		}
	}},
	{"an enqueued trial's parameters are used by the next trial", func(t *testing.T, e *env) {
		g := adapter(t, e, "worker-1")
		study, err := goptuna.CreateStudy("enqueued",
			goptuna.StudyOptionStorage(g),
			goptuna.StudyOptionSampler(goptuna.NewRandomSampler(goptuna.RandomSamplerOptionSeed(1))),
			goptuna.StudyOptionLogger(nil))
		must(t, "CreateStudy", err)
		must(t, "EnqueueTrial", study.EnqueueTrial(map[string]float64{"x": 1.25, "act": 2}))
		type seen struct {
			x   float64
			act string
		}
		var got []seen
		must(t, "Optimize", study.Optimize(func(tr goptuna.Trial) (float64, error) {
			x, err1 := tr.SuggestFloat("x", -10, 10)
			act, err2 := tr.SuggestCategorical("act", []string{"relu", "tanh", "gelu"})
			got = append(got, seen{x, act})
			return x * x, errors.Join(err1, err2)
		}, 2))
		if len(got) != 2 || got[0] != (seen{1.25, "gelu"}) {
			t.Fatalf("the objective saw %v; want {1.25 gelu} first", got)
		}
		trials, err := study.GetTrials()
		must(t, "GetTrials", err)
		if len(trials) != 2 {
			t.Fatalf("%d trials, want 2 (the enqueued one ran, no other was created for it)", len(trials))
		}
		first := trials[0]
		if first.State != goptuna.TrialStateComplete || first.Params["x"] != 1.25 || first.Params["act"] != "gelu" || first.Value != 1.25*1.25 {
			t.Errorf("enqueued trial after its run: %v, params %v, value %v", first.State, first.Params, first.Value)
		}
	}},
	{"pruners prune through intermediate values", func(t *testing.T, e *env) {
		halving, err := successivehalving.NewPruner(successivehalving.OptionReductionFactor(2))
		must(t, "successivehalving.NewPruner", err)
		for _, c := range []struct {
			name   string
			pruner goptuna.Pruner
		}{
			{"median stopping", medianstopping.NewMedianPruner()},
			{"successive halving", halving},
		} {
			t.Run(c.name, func(t *testing.T) {
				g := adapter(t, e, "worker-1")
				study, err := goptuna.CreateStudy(c.name,
					goptuna.StudyOptionStorage(g),
					goptuna.StudyOptionSampler(goptuna.NewRandomSampler(goptuna.RandomSamplerOptionSeed(3))),
					goptuna.StudyOptionPruner(c.pruner),
					goptuna.StudyOptionLogger(nil))
				must(t, "CreateStudy", err)
				const steps = 8
				must(t, "Optimize", study.Optimize(func(tr goptuna.Trial) (float64, error) {
					x, err := tr.SuggestFloat("x", 0, 1)
					if err != nil {
						return 0, err
					}
					for step := range steps {
						// Worse x is worse at every step; every curve falls.
						if err := tr.ShouldPrune(step, x+float64(steps-step)); err != nil {
							return 0, err
						}
					}
					return x, nil
				}, 30))
				trials, err := study.GetTrials()
				must(t, "GetTrials", err)
				counts := map[goptuna.TrialState]int{}
				for _, tr := range trials {
					counts[tr.State]++
					last, ok := tr.GetLatestStep()
					x := tr.Params["x"].(float64)
					switch tr.State {
					case goptuna.TrialStatePruned:
						if !ok || len(tr.IntermediateValues) != last+1 || tr.Value != tr.IntermediateValues[last] || last >= steps {
							t.Errorf("pruned trial %d: intermediate values %v, value %v", tr.Number, tr.IntermediateValues, tr.Value)
						}
					case goptuna.TrialStateComplete:
						if len(tr.IntermediateValues) != steps || tr.Value != x {
							t.Errorf("complete trial %d: intermediate values %v, value %v", tr.Number, tr.IntermediateValues, tr.Value)
						}
					default:
						t.Errorf("trial %d is %v", tr.Number, tr.State)
					}
					for step, v := range tr.IntermediateValues {
						if v != x+float64(steps-step) {
							t.Errorf("trial %d: step %d has value %v, want %v", tr.Number, step, v, x+float64(steps-step))
						}
					}
				}
				if len(trials) != 30 || counts[goptuna.TrialStatePruned] == 0 || counts[goptuna.TrialStateComplete] == 0 {
					t.Errorf("%d trials, by state %v: want 30, some pruned, some complete", len(trials), counts)
				}
			})
		}
	}},
}

// fixedParams decodes the fixed_params system attribute of a trial.
func fixedParams(t testing.TB, tr *storage.Trial) map[string]float64 {
	t.Helper()
	raw, ok := tr.SystemAttrs[storage.FixedParamsAttr]
	if !ok {
		t.Fatalf("trial %d has no %s system attribute (system attributes: %v)", tr.ID, storage.FixedParamsAttr, tr.SystemAttrs)
	}
	var m map[string]float64
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("trial %d: %s = %q is not a JSON object of numbers: %v", tr.ID, storage.FixedParamsAttr, raw, err)
	}
	return m
}

// retriedParams runs a goptuna trial on a retry and returns the parameters
// that Goptuna suggested for it: a retry's fixed_params must make Goptuna
// suggest the same parameters again.
func retriedParams(t testing.TB, g goptuna.Storage, studyName string, names []string) map[string]float64 {
	t.Helper()
	study, err := goptuna.LoadStudy(studyName, goptuna.StudyOptionStorage(g), goptuna.StudyOptionLogger(nil),
		goptuna.StudyOptionSampler(goptuna.NewRandomSampler(goptuna.RandomSamplerOptionSeed(9))))
	must(t, "LoadStudy", err)
	got := map[string]float64{}
	must(t, "Optimize", study.Optimize(func(tr goptuna.Trial) (float64, error) {
		for _, name := range slices.Sorted(slices.Values(names)) {
			v, err := tr.SuggestFloat(name, 0, 1)
			if err != nil {
				return 0, err
			}
			got[name] = v
		}
		return 0, nil
	}, 1))
	return got
}
