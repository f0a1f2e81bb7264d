package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/c-bata/goptuna"
)

// Goptuna adapts a Store to goptuna.Storage for one worker: trials it
// creates or claims run under that worker's name, and its writes to running
// trials are fenced by it. goptuna.Storage has no context; the adapter uses
// the one given to NewGoptuna for every call.
type Goptuna struct {
	s      *Store
	ctx    context.Context
	worker string
	frozen *frozenCache
}

// frozenCache keeps the Goptuna form of the finished trials the store
// serves from its cache (the same *Trial each time), so that TPE's reloads
// do not convert them again. Entries are checked against the store's
// pointer.
type frozenCache struct {
	mu      sync.Mutex
	entries map[int64]frozenEntry
	dists   distCache
}

type frozenEntry struct {
	from *Trial
	ft   goptuna.FrozenTrial
}

func (c *frozenCache) get(t *Trial) (goptuna.FrozenTrial, error) {
	if !t.State.Final() {
		return toFrozen(t)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[t.ID]; ok && e.from == t {
		return e.ft, nil
	}
	if c.entries == nil {
		c.entries, c.dists = map[int64]frozenEntry{}, distCache{}
	}
	ft, err := c.dists.frozen(t)
	if err != nil {
		return ft, err
	}
	c.entries[t.ID] = frozenEntry{t, ft}
	return ft, nil
}

var _ goptuna.Storage = (*Goptuna)(nil)

// NewGoptuna returns the goptuna.Storage of worker on s.
func NewGoptuna(ctx context.Context, s *Store, worker string) *Goptuna {
	return &Goptuna{s: s, ctx: ctx, worker: worker, frozen: &frozenCache{}}
}

// With returns the adapter of another worker, or of the same one under
// another context, on the same store. It shares g's cache of converted
// trials, so that a process that leases each trial under a name of its own
// converts every finished trial once.
func (g *Goptuna) With(ctx context.Context, worker string) *Goptuna {
	return &Goptuna{s: g.s, ctx: ctx, worker: worker, frozen: g.frozen}
}

// Worker returns the worker name the adapter writes under.
func (g *Goptuna) Worker() string { return g.worker }

// goptunaErr translates the store's errors into the sentinels Goptuna
// compares with ==.
func goptunaErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotUpdatable), errors.Is(err, ErrLeaseLost):
		return goptuna.ErrTrialCannotBeUpdated
	}
	return err
}

func id64(id int) int64 { return int64(id) }

// CreateNewStudy creates a study that minimises (Goptuna sets the
// direction next). An empty name gets a random one, as in Goptuna.
func (g *Goptuna) CreateNewStudy(name string) (int, error) {
	if name == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		name = goptuna.DefaultStudyNamePrefix + hex.EncodeToString(b[:])
	}
	st, err := g.s.CreateStudy(g.ctx, NewStudy{Name: name, Direction: Minimize})
	if err != nil {
		return -1, err
	}
	return int(st.ID), nil
}

func (g *Goptuna) DeleteStudy(studyID int) error { return g.s.DeleteStudy(g.ctx, id64(studyID)) }

func (g *Goptuna) SetStudyDirection(studyID int, direction goptuna.StudyDirection) error {
	return g.s.setStudyDirection(g.ctx, id64(studyID), fromGoptunaDirection(direction))
}

func fromGoptunaDirection(d goptuna.StudyDirection) Direction {
	if d == goptuna.StudyDirectionMaximize {
		return Maximize
	}
	return Minimize
}

// Goptuna returns the direction in Goptuna's terms.
func (d Direction) Goptuna() goptuna.StudyDirection {
	if d == Maximize {
		return goptuna.StudyDirectionMaximize
	}
	return goptuna.StudyDirectionMinimize
}

func (g *Goptuna) SetStudyUserAttr(studyID int, key, value string) error {
	return g.s.SetStudyAttr(g.ctx, id64(studyID), UserAttr, key, value)
}

func (g *Goptuna) SetStudySystemAttr(studyID int, key, value string) error {
	return g.s.SetStudyAttr(g.ctx, id64(studyID), SystemAttr, key, value)
}

func (g *Goptuna) GetStudyIDFromName(name string) (int, error) {
	st, err := g.s.StudyByName(g.ctx, name)
	if err != nil {
		return -1, err
	}
	return int(st.ID), nil
}

func (g *Goptuna) GetStudyIDFromTrialID(trialID int) (int, error) {
	l, err := g.s.trialStudy(g.ctx, id64(trialID))
	return int(l), err
}

func (g *Goptuna) GetStudyNameFromID(studyID int) (string, error) {
	st, err := g.s.Study(g.ctx, id64(studyID))
	if err != nil {
		return "", err
	}
	return st.Name, nil
}

func (g *Goptuna) GetStudyDirection(studyID int) (goptuna.StudyDirection, error) {
	st, err := g.s.Study(g.ctx, id64(studyID))
	if err != nil {
		return goptuna.StudyDirectionMinimize, err
	}
	return st.Direction.Goptuna(), nil
}

func (g *Goptuna) GetStudyUserAttrs(studyID int) (map[string]string, error) {
	st, err := g.s.Study(g.ctx, id64(studyID))
	if err != nil {
		return nil, err
	}
	return st.UserAttrs, nil
}

func (g *Goptuna) GetStudySystemAttrs(studyID int) (map[string]string, error) {
	st, err := g.s.Study(g.ctx, id64(studyID))
	if err != nil {
		return nil, err
	}
	return st.SystemAttrs, nil
}

func (g *Goptuna) GetAllStudySummaries() ([]goptuna.StudySummary, error) {
	studies, err := g.s.Studies(g.ctx)
	if err != nil {
		return nil, err
	}
	out := make([]goptuna.StudySummary, 0, len(studies))
	for _, st := range studies {
		sum := goptuna.StudySummary{
			ID: int(st.ID), Name: st.Name, Direction: st.Direction.Goptuna(),
			UserAttrs: st.UserAttrs, SystemAttrs: st.SystemAttrs, DatetimeStart: st.CreatedAt,
		}
		if best, err := g.s.Best(g.ctx, st.ID); err == nil {
			if sum.BestTrial, err = toFrozen(best); err != nil {
				return nil, err
			}
		} else if !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		out = append(out, sum)
	}
	return out, nil
}

// CreateNewTrial creates a trial running under the adapter's worker; it
// fails with ErrBudgetExhausted when the study's budget is spent.
func (g *Goptuna) CreateNewTrial(studyID int) (int, error) {
	t, err := g.s.CreateTrial(g.ctx, id64(studyID), NewTrial{State: Running, Worker: g.worker, Value: math.NaN()})
	if err != nil {
		return -1, err
	}
	return int(t.ID), nil
}

// CloneTrial creates a trial from a frozen one (Goptuna's EnqueueTrial
// creates waiting trials this way); a running one runs under the adapter's
// worker.
func (g *Goptuna) CloneTrial(studyID int, base goptuna.FrozenTrial) (int, error) {
	nt := NewTrial{
		State: fromGoptunaState(base.State), Value: base.Value, Params: map[string]Param{},
		Intermediate: base.IntermediateValues, UserAttrs: base.UserAttrs, SystemAttrs: base.SystemAttrs,
	}
	if !nt.State.Final() {
		nt.Value = math.NaN()
	}
	if nt.State == Running {
		nt.Worker = g.worker
	}
	for name, v := range base.InternalParams {
		d, err := goptuna.DistributionToJSON(base.Distributions[name])
		if err != nil {
			return -1, fmt.Errorf("clone trial: parameter %q: %w", name, err)
		}
		nt.Params[name] = Param{Value: v, Distribution: d}
	}
	t, err := g.s.CreateTrial(g.ctx, id64(studyID), nt)
	if err != nil {
		return -1, err
	}
	return int(t.ID), nil
}

func fromGoptunaState(s goptuna.TrialState) State {
	switch s {
	case goptuna.TrialStateRunning:
		return Running
	case goptuna.TrialStateComplete:
		return Complete
	case goptuna.TrialStatePruned:
		return Pruned
	case goptuna.TrialStateFail:
		return Fail
	case goptuna.TrialStateWaiting:
		return Waiting
	}
	return State(fmt.Sprintf("goptuna state %d", s))
}

func toGoptunaState(s State) goptuna.TrialState {
	switch s {
	case Running:
		return goptuna.TrialStateRunning
	case Complete:
		return goptuna.TrialStateComplete
	case Pruned:
		return goptuna.TrialStatePruned
	case Fail:
		return goptuna.TrialStateFail
	}
	return goptuna.TrialStateWaiting
}

func (g *Goptuna) SetTrialValue(trialID int, value float64) error {
	return goptunaErr(g.s.setValue(g.ctx, id64(trialID), g.worker, value))
}

func (g *Goptuna) SetTrialIntermediateValue(trialID int, step int, value float64) error {
	return goptunaErr(g.s.Report(g.ctx, id64(trialID), g.worker, step, value))
}

func (g *Goptuna) SetTrialParam(trialID int, name string, internal float64, distribution interface{}) error {
	d, err := goptuna.DistributionToJSON(distribution)
	if err != nil {
		return fmt.Errorf("set parameter %q of trial id %d: %w", name, trialID, err)
	}
	return goptunaErr(g.s.setParam(g.ctx, id64(trialID), g.worker, name, Param{Value: internal, Distribution: d}))
}

// SetTrialState claims a waiting trial (Running) or finishes a running one.
// Both give goptuna.ErrTrialCannotBeUpdated when another worker got there
// first, which Goptuna takes as "try the next waiting trial".
func (g *Goptuna) SetTrialState(trialID int, state goptuna.TrialState) error {
	switch st := fromGoptunaState(state); {
	case st == Running:
		return goptunaErr(g.s.claim(g.ctx, id64(trialID), g.worker))
	case st.Final():
		return goptunaErr(g.s.Finish(g.ctx, id64(trialID), g.worker, st, math.NaN()))
	default:
		return goptuna.ErrTrialCannotBeUpdated
	}
}

func (g *Goptuna) SetTrialUserAttr(trialID int, key, value string) error {
	return goptunaErr(g.s.SetTrialAttr(g.ctx, id64(trialID), g.worker, UserAttr, key, value))
}

func (g *Goptuna) SetTrialSystemAttr(trialID int, key, value string) error {
	return goptunaErr(g.s.SetTrialAttr(g.ctx, id64(trialID), g.worker, SystemAttr, key, value))
}

func (g *Goptuna) GetTrialNumberFromID(trialID int) (int, error) {
	t, err := g.s.Trial(g.ctx, id64(trialID))
	if err != nil {
		return -1, err
	}
	return t.Number, nil
}

func (g *Goptuna) GetTrialParam(trialID int, name string) (float64, error) {
	t, err := g.s.Trial(g.ctx, id64(trialID))
	if err != nil {
		return -1, err
	}
	p, ok := t.Params[name]
	if !ok {
		return -1, fmt.Errorf("parameter %q of trial id %d: %w", name, trialID, ErrNotFound)
	}
	return p.Value, nil
}

func (g *Goptuna) GetTrial(trialID int) (goptuna.FrozenTrial, error) {
	t, err := g.s.Trial(g.ctx, id64(trialID))
	if err != nil {
		return goptuna.FrozenTrial{}, err
	}
	return toFrozen(t)
}

// GetAllTrials loads the study's trials in a constant number of queries:
// TPE calls it at every suggestion. Finished trials share their maps
// between calls: Goptuna's samplers and pruners only read them.
func (g *Goptuna) GetAllTrials(studyID int) ([]goptuna.FrozenTrial, error) {
	ts, err := g.s.Trials(g.ctx, id64(studyID))
	if err != nil {
		return nil, err
	}
	out := make([]goptuna.FrozenTrial, len(ts))
	for i, t := range ts {
		if out[i], err = g.frozen.get(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (g *Goptuna) GetBestTrial(studyID int) (goptuna.FrozenTrial, error) {
	t, err := g.s.Best(g.ctx, id64(studyID))
	if errors.Is(err, ErrNotFound) {
		return goptuna.FrozenTrial{}, goptuna.ErrNoCompletedTrials
	} else if err != nil {
		return goptuna.FrozenTrial{}, err
	}
	return toFrozen(t)
}

func (g *Goptuna) GetTrialParams(trialID int) (map[string]interface{}, error) {
	t, err := g.GetTrial(trialID)
	if err != nil {
		return nil, err
	}
	return t.Params, nil
}

func (g *Goptuna) GetTrialUserAttrs(trialID int) (map[string]string, error) {
	return g.s.trialAttrs(g.ctx, id64(trialID), UserAttr)
}

// GetTrialSystemAttrs answers Goptuna's check for fixed parameters, made at
// every suggestion, in one query.
func (g *Goptuna) GetTrialSystemAttrs(trialID int) (map[string]string, error) {
	return g.s.trialAttrs(g.ctx, id64(trialID), SystemAttr)
}

// toFrozen converts a stored trial into Goptuna's form. A trial without a
// value has Value 0, as in Goptuna's own storages.
func toFrozen(t *Trial) (goptuna.FrozenTrial, error) { return distCache{}.frozen(t) }

// distCache decodes each distinct distribution JSON once: a study's trials
// share a handful of distributions, and TPE loads every trial at every
// suggestion.
type distCache map[string]interface{}

func (c distCache) decode(raw []byte) (interface{}, error) {
	if d, ok := c[string(raw)]; ok {
		return d, nil
	}
	d, err := goptuna.JSONToDistribution(raw)
	if err != nil {
		return nil, err
	}
	c[string(raw)] = d
	return d, nil
}

func (c distCache) frozen(t *Trial) (goptuna.FrozenTrial, error) {
	ft := goptuna.FrozenTrial{
		ID: int(t.ID), StudyID: int(t.StudyID), Number: t.Number, State: toGoptunaState(t.State),
		IntermediateValues: t.Intermediate, DatetimeStart: t.StartedAt, DatetimeComplete: t.CompletedAt,
		InternalParams: make(map[string]float64, len(t.Params)), Params: make(map[string]interface{}, len(t.Params)),
		Distributions: make(map[string]interface{}, len(t.Params)), UserAttrs: t.UserAttrs, SystemAttrs: t.SystemAttrs,
	}
	if t.HasValue() {
		ft.Value = t.Value
	}
	for name, p := range t.Params {
		d, err := c.decode(p.Distribution)
		if err != nil {
			return ft, fmt.Errorf("trial id %d: parameter %q: %w", t.ID, name, err)
		}
		ext, err := goptuna.ToExternalRepresentation(d, p.Value)
		if err != nil {
			return ft, fmt.Errorf("trial id %d: parameter %q: %w", t.ID, name, err)
		}
		ft.InternalParams[name], ft.Params[name], ft.Distributions[name] = p.Value, ext, d
	}
	return ft, nil
}
