package search

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/floodtune/floodtune/storage"
)

// Errors of the search's concern; compare with errors.Is. The storage's
// errors are repeated here so that a program that embeds the search needs
// no other package to tell them apart.
var (
	// ErrBadSpec is matched by every problem of a spec (ParseSpec,
	// Spec.Validate, Create).
	ErrBadSpec = errors.New("bad study spec")
	// ErrBadOptions is matched by inconsistent Options or AskOptions.
	ErrBadOptions = errors.New("bad search options")
	// ErrUnbounded is returned by Optimize for a study without a trial
	// budget when the call sets neither MaxTrials nor Timeout.
	ErrUnbounded = errors.New("the study has no trial budget and the call no limit")
	// ErrTrialFinished is returned by a Trial's methods once it was told,
	// pruned, failed or released.
	ErrTrialFinished = errors.New("the trial is finished")

	ErrNotFound        = storage.ErrNotFound
	ErrStudyExists     = storage.ErrStudyExists
	ErrBudgetExhausted = storage.ErrBudgetExhausted
	ErrLeaseLost       = storage.ErrLeaseLost
	ErrUnavailable     = storage.ErrUnavailable
)

// Study is a handle on a stored study: its spec, its trials decoded, and
// the ask/tell core that Optimize's workers and any other program share.
// Create or Load returns one. It is safe for concurrent use; any number of
// handles, in any number of processes, may work on one study at once.
type Study struct {
	st      *storage.Store
	stored  *storage.Study
	spec    *Spec
	adapter *storage.Goptuna // shares the Goptuna form of finished trials between trials
	prefix  string           // of the worker names of Ask
	asks    atomic.Int64
	cma     relative
}

// Create validates spec and creates the study name in st with the spec's
// budget and seed; unless the spec says otherwise, it enqueues the baseline
// trial: plain training (flood level 0), the other searched options at their
// fixed values (or their lowest). A centred flood-level range (see
// Param.Center) is resolved in spec first, and a trial at its estimate is
// enqueued. Nothing is written when the spec is bad.
func Create(ctx context.Context, st *storage.Store, name string, spec *Spec) (*Study, error) {
	if err := checkArgs(ctx, st); err != nil {
		return nil, err
	}
	if spec == nil {
		return nil, fmt.Errorf("%w: create study %q: no spec", ErrBadSpec, name)
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	centred, err := spec.resolveCenter(ctx)
	if err != nil {
		return nil, fmt.Errorf("centre the flood-level range of study %q: %w", name, err)
	}
	if centred {
		if err := spec.Validate(); err != nil {
			return nil, fmt.Errorf("%w: the centred range: %w", ErrBadSpec, err)
		}
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode the spec of study %q: %w", name, err)
	}
	// The study and the trials it starts with are one write.
	var first []storage.NewTrial
	if spec.WithBaseline() {
		nt, err := spec.waiting(spec.baselineValues(), map[string]string{BaselineAttr: "true"})
		if err != nil {
			return nil, fmt.Errorf("the baseline trial of study %q: %w", name, err)
		}
		first = append(first, nt)
	}
	if p := spec.Space["flood_level"]; p.Estimate != nil {
		values := spec.baselineValues()
		values["flood_level"] = *p.Estimate
		nt, err := spec.waiting(values, map[string]string{EstimateAttr: p.Center})
		if err != nil {
			return nil, fmt.Errorf("the trial at the estimated flood level of study %q: %w", name, err)
		}
		first = append(first, nt)
	}
	stored, err := st.CreateStudy(ctx, storage.NewStudy{Name: name, Direction: storage.Direction(spec.Direction()), Spec: raw,
		Budget: spec.Search.Trials, Seed: spec.Search.Seed, Trials: first})
	if err != nil {
		return nil, err
	}
	return newStudy(st, stored, spec), nil
}

// Load returns a handle on the study name of st.
func Load(ctx context.Context, st *storage.Store, name string) (*Study, error) {
	if err := checkArgs(ctx, st); err != nil {
		return nil, err
	}
	stored, err := st.StudyByName(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("load study %q: %w", name, err)
	}
	spec, err := LoadSpec(stored)
	if err != nil {
		return nil, err
	}
	return newStudy(st, stored, spec), nil
}

// ErrSpecMismatch is returned by LoadOrCreate when the study exists with
// another spec.
var ErrSpecMismatch = errors.New("the study exists with another spec")

// LoadOrCreate returns a handle on the study name: created from spec, as
// Create does, if there is none, else loaded, after checking that it was
// created from the same spec (ErrSpecMismatch if not). A program that runs
// again, or runs on several machines at once, resumes its one study this
// way, and one whose spec changed is told instead of going on with the old.
func LoadOrCreate(ctx context.Context, st *storage.Store, name string, spec *Spec) (*Study, error) {
	if err := checkArgs(ctx, st); err != nil {
		return nil, err
	}
	if spec == nil {
		return nil, fmt.Errorf("%w: study %q: no spec", ErrBadSpec, name)
	}
	s, err := Load(ctx, st, name)
	if errors.Is(err, storage.ErrNotFound) {
		given := spec.clone()
		s, err = Create(ctx, st, name, given)
		if !errors.Is(err, storage.ErrStudyExists) {
			return s, err
		}
		// Created by another process meanwhile.
		s, err = Load(ctx, st, name)
	}
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSpec, err)
	}
	if !spec.sameAs(s.spec) {
		return nil, fmt.Errorf("study %q: %w: delete it, or give the study another name", name, ErrSpecMismatch)
	}
	return s, nil
}

// clone returns a deep copy of the spec.
func (s *Spec) clone() *Spec {
	var c Spec
	b, err := json.Marshal(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return s
	}
	return &c
}

// sameAs reports whether a study stored with spec stored was created from
// s: the same spec, but for the range a centred flood level was resolved to.
func (s *Spec) sameAs(stored *Spec) bool {
	given := s.clone()
	if p, ok := given.Space["flood_level"]; ok && p.Center != "" && p.Estimate == nil {
		if q, ok := stored.Space["flood_level"]; ok && q.Center == p.Center {
			p.Low, p.High, p.Estimate = q.Low, q.High, q.Estimate
			given.Space["flood_level"] = p
		}
	}
	a, errA := json.Marshal(given)
	b, errB := json.Marshal(stored)
	return errA == nil && errB == nil && string(a) == string(b)
}

func newStudy(st *storage.Store, stored *storage.Study, spec *Spec) *Study {
	return &Study{st: st, stored: stored, spec: spec, prefix: defaultWorkerName(),
		adapter: storage.NewGoptuna(context.Background(), st, "")}
}

// checkArgs refuses the nil arguments that would otherwise panic.
func checkArgs(ctx context.Context, st *storage.Store) error {
	switch {
	case ctx == nil:
		return errors.New("search: nil context")
	case st == nil:
		return errors.New("search: nil store")
	}
	return nil
}

// defaultWorkerName is host-pid-random: unique to the process and to the
// call that takes it.
func defaultWorkerName() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "worker"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
}

// LoadSpec returns the spec stored with a study. A study made outside
// floodtune's search (through the Goptuna adapter, with no spec) reads as
// an external trainer's study with nothing in its space: its objective
// suggests its parameters as it runs.
func LoadSpec(study *storage.Study) (*Spec, error) {
	var s Spec
	if len(study.Spec) > 0 {
		if err := json.Unmarshal(study.Spec, &s); err != nil {
			return nil, fmt.Errorf("read the spec of study %q: %w", study.Name, err)
		}
	}
	if s.Trainer == "" && s.Dataset.Name == "" && len(s.Space) == 0 {
		s.Trainer = TrainerExternal
		s.Search.Direction = string(study.Direction)
	}
	return &s, nil
}

// Name returns the study's name.
func (s *Study) Name() string { return s.stored.Name }

// ID returns the study's id in its storage.
func (s *Study) ID() int64 { return s.stored.ID }

// Spec returns the study's spec. It is shared: do not change it.
func (s *Study) Spec() *Spec { return s.spec }

// Stored returns the study's record in its storage.
func (s *Study) Stored() *storage.Study { return s.stored }

// Store returns the storage the study lives in.
func (s *Study) Store() *storage.Store { return s.st }

// Direction returns whether the study maximises or minimises its objective.
func (s *Study) Direction() storage.Direction { return s.stored.Direction }

// Budget returns the study-wide trial budget; 0 means no limit.
func (s *Study) Budget() int { return s.stored.Budget }

// UserAttrs reads the study's user attributes.
func (s *Study) UserAttrs(ctx context.Context) (map[string]string, error) {
	st, err := s.st.Study(ctx, s.stored.ID)
	if err != nil {
		return nil, fmt.Errorf("read the attributes of study %q: %w", s.Name(), err)
	}
	return st.UserAttrs, nil
}

// SetUserAttr sets a user attribute of the study.
func (s *Study) SetUserAttr(ctx context.Context, key, value string) error {
	return s.st.SetStudyAttr(ctx, s.stored.ID, storage.UserAttr, key, value)
}

// TrialRecord is a stored trial with its parameters decoded: what a program
// reads back from a study.
type TrialRecord struct {
	Number int
	State  storage.State
	Value  float64 // NaN when the trial has none
	// Params holds the values of the searched options, suggested ones
	// included: a float64, an int, or a categorical choice (the string,
	// not its index).
	Params       map[string]any
	Intermediate map[int]float64 // reported per step (epoch)
	Seed         int64           // the trial's training seed; 0 before it starts
	Baseline     bool            // the plain-training trial Create enqueued
	Attempt      int             // 0 for a first run, n for the n-th retry
	RetryOf      int             // with Attempt > 0, the number of the trial retried
	FailReason   string          // why a failed trial failed
	Worker       string          // the worker that ran it last
	Started      time.Time
	Completed    time.Time
	UserAttrs    map[string]string
	SystemAttrs  map[string]string
}

// record decodes a stored trial; numbers maps trial ids to numbers for
// RetryOf (nil: looked up).
func (s *Study) record(ctx context.Context, t *storage.Trial, numbers map[int64]int) (TrialRecord, error) {
	params, err := s.spec.TrialParams(t)
	if err != nil {
		return TrialRecord{}, err
	}
	r := TrialRecord{Number: t.Number, State: t.State, Value: t.Value, Params: params, Intermediate: t.Intermediate,
		Baseline: t.SystemAttrs[BaselineAttr] == "true", Attempt: t.Attempt, FailReason: t.SystemAttrs[ReasonAttr],
		Worker: t.Worker, Started: t.StartedAt, Completed: t.CompletedAt, UserAttrs: t.UserAttrs, SystemAttrs: t.SystemAttrs}
	if seed, err := strconv.ParseInt(t.SystemAttrs[SeedAttr], 10, 64); err == nil {
		r.Seed = seed
	}
	if t.RetryOf != 0 {
		if n, ok := numbers[t.RetryOf]; ok {
			r.RetryOf = n
		} else if of, err := s.st.Trial(ctx, t.RetryOf); err == nil {
			r.RetryOf = of.Number
		} else {
			return TrialRecord{}, fmt.Errorf("the trial that trial %d retries: %w", t.Number, err)
		}
	}
	return r, nil
}

// Trials reads the study's trials in the order of their numbers.
func (s *Study) Trials(ctx context.Context) ([]TrialRecord, error) {
	ts, err := s.st.Trials(ctx, s.stored.ID)
	if err != nil {
		return nil, fmt.Errorf("read the trials of study %q: %w", s.Name(), err)
	}
	numbers := make(map[int64]int, len(ts))
	for _, t := range ts {
		numbers[t.ID] = t.Number
	}
	out := make([]TrialRecord, len(ts))
	for i, t := range ts {
		if out[i], err = s.record(ctx, t, numbers); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Trial reads the trial numbered number; ErrNotFound if there is none.
func (s *Study) Trial(ctx context.Context, number int) (*TrialRecord, error) {
	t, err := s.st.TrialByNumber(ctx, s.stored.ID, number)
	if err != nil {
		return nil, fmt.Errorf("read trial %d of study %q: %w", number, s.Name(), err)
	}
	r, err := s.record(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Best reads the complete trial with the best value; ErrNotFound while no
// trial is complete.
func (s *Study) Best(ctx context.Context) (*TrialRecord, error) {
	t, err := s.st.Best(ctx, s.stored.ID)
	if err != nil {
		return nil, fmt.Errorf("the best trial of study %q: %w", s.Name(), err)
	}
	r, err := s.record(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Baseline reads the study's plain-training trial, the retry that ran it
// last when it was retried; ErrNotFound when the study has none.
func (s *Study) Baseline(ctx context.Context) (*TrialRecord, error) {
	ts, err := s.st.Trials(ctx, s.stored.ID)
	if err != nil {
		return nil, fmt.Errorf("read the trials of study %q: %w", s.Name(), err)
	}
	base := FindBaseline(ts)
	if base == nil {
		return nil, fmt.Errorf("the baseline of study %q: %w", s.Name(), ErrNotFound)
	}
	r, err := s.record(ctx, base, nil)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// FindBaseline returns the plain-training baseline trial among a study's
// trials, following retries to the trial that ran it last; nil when there
// is none.
func FindBaseline(trials []*storage.Trial) *storage.Trial {
	byID := make(map[int64]*storage.Trial, len(trials))
	var base *storage.Trial
	for _, t := range trials {
		byID[t.ID] = t
		if base == nil && t.SystemAttrs[BaselineAttr] == "true" {
			base = t
		}
	}
	for seen := 0; base != nil && base.RetriedBy != 0 && seen < len(trials); seen++ {
		next := byID[base.RetriedBy]
		if next == nil {
			break
		}
		base = next
	}
	return base
}

// BestParams returns the parameters of the best complete trial, decoded
// (see TrialRecord.Params); ErrNotFound while no trial is complete.
func (s *Study) BestParams(ctx context.Context) (map[string]any, error) {
	best, err := s.Best(ctx)
	if err != nil {
		return nil, err
	}
	return best.Params, nil
}

// Counts returns the number of trials in each state, and how many count
// toward the budget.
func (s *Study) Counts(ctx context.Context) (map[storage.State]int, int, error) {
	return s.st.Counts(ctx, s.stored.ID)
}

// Enqueue adds a waiting trial with the given values of searched options,
// which are checked against their space (a *SpaceError when one is not in
// it); options not given are sampled when the trial runs. attrs are
// recorded as system attributes.
func (s *Study) Enqueue(ctx context.Context, values map[string]any, attrs map[string]string) (*TrialRecord, error) {
	nt, err := s.spec.waiting(values, attrs)
	if err != nil {
		return nil, fmt.Errorf("study %q: %w", s.Name(), err)
	}
	t, err := s.st.CreateTrial(ctx, s.stored.ID, nt)
	if err != nil {
		return nil, fmt.Errorf("enqueue a trial in study %q: %w", s.Name(), err)
	}
	r, err := s.record(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// waiting returns a waiting trial that will run with the given values of
// searched options, checked against their space; attrs are its system
// attributes.
func (s *Spec) waiting(values map[string]any, attrs map[string]string) (storage.NewTrial, error) {
	fixed := map[string]float64{}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		p, ok := s.Space[name]
		if !ok {
			return storage.NewTrial{}, fmt.Errorf("%s is not searched (searched: %s)", name, s.searchedNames())
		}
		internal, err := p.internal(name, values[name])
		if err != nil {
			return storage.NewTrial{}, err
		}
		fixed[name] = internal
	}
	b, err := json.Marshal(fixed)
	if err != nil {
		return storage.NewTrial{}, err
	}
	sys := map[string]string{storage.FixedParamsAttr: string(b)}
	for k, v := range attrs {
		sys[k] = v
	}
	return storage.NewTrial{State: storage.Waiting, Value: math.NaN(), SystemAttrs: sys}, nil
}

// baselineValues are the values of the baseline trial: flood level 0, each
// other searched option at its fixed value, else its first choice or the
// middle of its range (geometric for a log scale), so that plain training
// is not judged at an extreme.
func (s *Spec) baselineValues() map[string]any {
	fixed := s.fixedNames()
	values := map[string]any{}
	for name, p := range s.Space {
		switch {
		case name == "flood_level":
			values[name] = 0.0
		case fixed[name] != nil:
			values[name] = fixed[name]
		case p.Type == Categorical:
			values[name] = p.Choices[0]
		default:
			values[name] = p.middle()
		}
	}
	return values
}

// TrialSeed derives a trial's seed from the study's seed and the trial's
// number.
func TrialSeed(studySeed int64, number int) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "floodtune/%d/%d", studySeed, number)
	return int64(h.Sum64() >> 1)
}

// trialSeed is the training seed of trial number with the given values of
// the searched options: TrialSeed's, or with common_seed one shared by the
// trials whose options but the flood level and method are the same.
func (s *Spec) trialSeed(number int, values map[string]any) int64 {
	if !s.Search.CommonSeed {
		return TrialSeed(s.Search.Seed, number)
	}
	h := fnv.New64a()
	fmt.Fprintf(h, "floodtune-common/%d", s.Search.Seed)
	for _, name := range slices.Sorted(maps.Keys(values)) {
		if name == "flood_level" || name == "flood" {
			continue
		}
		fmt.Fprintf(h, "/%s=%#v", name, values[name])
	}
	return int64(h.Sum64() >> 1)
}

// middle returns the middle of a float or int parameter's range, on its
// scale and step grid.
func (p Param) middle() float64 {
	lo, hi := *p.Low, *p.High
	m := (lo + hi) / 2
	if p.Log {
		m = math.Sqrt(lo * hi)
	}
	if p.Step != nil {
		m = lo + math.Round((m-lo)/(*p.Step))**p.Step
	}
	if p.Type == Int {
		m = math.Round(m)
	}
	return math.Min(math.Max(m, lo), hi)
}
