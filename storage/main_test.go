package storage_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend is a database that the conformance suite runs on.
type backend struct {
	name    string
	dialect string // "postgres" or "sqlite"
	// url returns the URL of a fresh, empty database of the backend, removed
	// when t ends.
	url func(t testing.TB) string
}

var backends = []backend{
	{name: "postgres", dialect: "postgres", url: func(t testing.TB) string { return pgtest.Schema(t) }},
	{name: "sqlite", dialect: "sqlite", url: func(t testing.TB) string { return "sqlite:" + t.TempDir() + "/floodtune.db" }},
	// PostgreSQL through a PgBouncer in transaction-pooling mode whose
	// pool (pgtest.BouncerPoolSize server connections) the test's stores
	// share, with the URL setting that says so.
	{name: "pgbouncer", dialect: "postgres", url: bouncerURL},
}

// bouncerURL returns the URL, with pgbouncer=transaction, of a fresh
// database through a PgBouncer of its own in transaction mode.
func bouncerURL(t testing.TB) string {
	via, direct := pgtest.Bouncer(t)
	u := via + "&pgbouncer=transaction"
	directURLs.Store(u, direct)
	return u
}

// directURLs maps the URLs of bouncerURL to those of the same databases
// on the server itself.
var directURLs sync.Map

// directURL returns the URL of the database of url on the server itself:
// url, unless it leads through a PgBouncer.
func directURL(url string) string {
	if d, ok := directURLs.Load(url); ok {
		return d.(string)
	}
	return url
}

// env is what a conformance test runs on: a store opened (and migrated) on
// a fresh database of one backend.
type env struct {
	backend string // the dialect: "postgres" (also through PgBouncer) or "sqlite"
	via     string // the backend's name: "postgres", "sqlite" or "pgbouncer"
	url     string
	st      *storage.Store
	fresh   func(t testing.TB) string
}

// open opens another store on the env's database, closed when t ends.
func (e *env) open(t testing.TB, opts ...storage.Option) *storage.Store {
	t.Helper()
	return openStore(t, e.url, opts...)
}

// stores returns n stores on the env's database: the env's own and n-1
// others, each with its own connections (a pool on PostgreSQL).
func (e *env) stores(t testing.TB, n int) []*storage.Store {
	t.Helper()
	out := []*storage.Store{e.st}
	for len(out) < n {
		out = append(out, e.open(t))
	}
	return out
}

// freshURL returns the URL of another fresh, empty database of the backend.
func (e *env) freshURL(t testing.TB) string { return e.fresh(t) }

func openStore(t testing.TB, url string, opts ...storage.Option) *storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), url, opts...)
	if err != nil {
		t.Fatalf("open %s: %v", storage.Redact(url), err)
	}
	// Registered after the database's own cleanup, so it runs first: the
	// connections are closed before the schema is dropped.
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// conformanceTest is one test that every backend must pass.
type conformanceTest struct {
	name string
	run  func(t *testing.T, e *env)
}

// runConformance runs each test on each backend, in parallel, each on its
// own fresh database with its own store.
func runConformance(t *testing.T, tests []conformanceTest) {
	t.Helper()
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					e := &env{backend: b.dialect, via: b.name, url: b.url(t), fresh: b.url}
					e.st = openStore(t, e.url)
					tc.run(t, e)
				})
			}
		})
	}
}

var nan = math.NaN()

// newStudy creates a study (minimising, without budget unless ns says).
func newStudy(t testing.TB, st *storage.Store, ns storage.NewStudy) *storage.Study {
	t.Helper()
	if ns.Name == "" {
		ns.Name = "study"
	}
	if ns.Direction == "" {
		ns.Direction = storage.Minimize
	}
	s, err := st.CreateStudy(context.Background(), ns)
	if err != nil {
		t.Fatalf("create study %q: %v", ns.Name, err)
	}
	return s
}

// running describes a trial that worker runs, without a value.
func running(worker string) storage.NewTrial {
	return storage.NewTrial{State: storage.Running, Worker: worker, Value: nan}
}

// waiting describes an enqueued trial with the given parameters.
func waiting(params map[string]storage.Param) storage.NewTrial {
	return storage.NewTrial{State: storage.Waiting, Value: nan, Params: params}
}

func newTrial(t testing.TB, st *storage.Store, studyID int64, nt storage.NewTrial) *storage.Trial {
	t.Helper()
	tr, err := st.CreateTrial(context.Background(), studyID, nt)
	if err != nil {
		t.Fatalf("create a %s trial in study %d: %v", nt.State, studyID, err)
	}
	return tr
}

func getTrial(t testing.TB, st *storage.Store, id int64) *storage.Trial {
	t.Helper()
	tr, err := st.Trial(context.Background(), id)
	if err != nil {
		t.Fatalf("read trial %d: %v", id, err)
	}
	return tr
}

func getTrials(t testing.TB, st *storage.Store, studyID int64) []*storage.Trial {
	t.Helper()
	ts, err := st.Trials(context.Background(), studyID)
	if err != nil {
		t.Fatalf("read the trials of study %d: %v", studyID, err)
	}
	return ts
}

// uniform is a parameter of Goptuna's UniformDistribution on [low, high].
func uniform(v, low, high float64) storage.Param {
	return storage.Param{Value: v, Distribution: []byte(fmt.Sprintf(
		`{"name":"UniformDistribution","attributes":{"high":%v,"low":%v}}`, high, low))}
}

// sameFloat reports whether a and b are the same value, NaN included.
func sameFloat(a, b float64) bool {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.IsNaN(a) && math.IsNaN(b)
	}
	return a == b && math.Signbit(a) == math.Signbit(b)
}

func sameFloatMap[K comparable](a, b map[K]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !sameFloat(v, w) {
			return false
		}
	}
	return true
}

// sameStrings compares string maps, nil being the same as empty.
func sameStrings(a, b map[string]string) bool { return maps.Equal(a, b) }

// trialDiff describes how two stored trials differ, "" when they do not.
func trialDiff(got, want *storage.Trial) string {
	var d []string
	add := func(field string, g, w any) { d = append(d, fmt.Sprintf("%s = %v, want %v", field, g, w)) }
	if got.ID != want.ID {
		add("ID", got.ID, want.ID)
	}
	if got.StudyID != want.StudyID {
		add("StudyID", got.StudyID, want.StudyID)
	}
	if got.Number != want.Number {
		add("Number", got.Number, want.Number)
	}
	if got.State != want.State {
		add("State", got.State, want.State)
	}
	if !sameFloat(got.Value, want.Value) {
		add("Value", got.Value, want.Value)
	}
	for _, f := range []struct {
		name string
		g, w time.Time
	}{{"StartedAt", got.StartedAt, want.StartedAt}, {"CompletedAt", got.CompletedAt, want.CompletedAt}, {"HeartbeatAt", got.HeartbeatAt, want.HeartbeatAt}} {
		if !f.g.Equal(f.w) {
			add(f.name, f.g, f.w)
		}
	}
	if got.Worker != want.Worker {
		add("Worker", got.Worker, want.Worker)
	}
	if got.Attempt != want.Attempt {
		add("Attempt", got.Attempt, want.Attempt)
	}
	if got.RetryOf != want.RetryOf {
		add("RetryOf", got.RetryOf, want.RetryOf)
	}
	if got.RetriedBy != want.RetriedBy {
		add("RetriedBy", got.RetriedBy, want.RetriedBy)
	}
	if !sameParams(got.Params, want.Params) {
		add("Params", paramsString(got.Params), paramsString(want.Params))
	}
	if !sameFloatMap(got.Intermediate, want.Intermediate) {
		add("Intermediate", got.Intermediate, want.Intermediate)
	}
	if !sameStrings(got.UserAttrs, want.UserAttrs) {
		add("UserAttrs", got.UserAttrs, want.UserAttrs)
	}
	if !sameStrings(got.SystemAttrs, want.SystemAttrs) {
		add("SystemAttrs", got.SystemAttrs, want.SystemAttrs)
	}
	return strings.Join(d, "; ")
}

// sameParams compares parameters by value and by distribution, the latter
// as JSON (PostgreSQL's JSONB normalises spacing and key order).
func sameParams(a, b map[string]storage.Param) bool {
	if len(a) != len(b) {
		return false
	}
	for k, p := range a {
		q, ok := b[k]
		if !ok || !sameFloat(p.Value, q.Value) || !sameJSON(p.Distribution, q.Distribution) {
			return false
		}
	}
	return true
}

func paramsString(ps map[string]storage.Param) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(ps)) {
		fmt.Fprintf(&b, "%s=%v %s; ", k, ps[k].Value, ps[k].Distribution)
	}
	return b.String()
}

// race runs f(i) for i in [0, n) in n goroutines that start at the same
// moment, and waits for them.
func race(n int, f func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			f(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// wantErr fails t unless errors.Is(err, want).
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

// checkNumbers checks that the trials are numbered 0, 1, ..., n-1 in order,
// once each.
func checkNumbers(t testing.TB, ts []*storage.Trial, n int) {
	t.Helper()
	if len(ts) != n {
		t.Errorf("%d trials, want %d", len(ts), n)
	}
	for i, tr := range ts {
		if tr.Number != i {
			t.Errorf("trial %d (id %d) has number %d: numbers are not 0..%d without gaps or duplicates", i, tr.ID, tr.Number, n-1)
			return
		}
	}
}

// sameJSON reports whether a and b are the same JSON value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// rawDB opens the env's database beside the store, for checks that the API
// cannot make (what is left in a table). It is closed when t ends.
func rawDB(t testing.TB, e *env) *sql.DB {
	t.Helper()
	var db *sql.DB
	var err error
	switch e.backend {
	case "postgres":
		// On the server itself, past any PgBouncer.
		db, err = sql.Open("pgx", directURL(e.url))
	default:
		db, err = sql.Open("sqlite", "file:"+strings.TrimPrefix(e.url, "sqlite:")+"?_pragma=busy_timeout(10000)")
	}
	if err != nil {
		t.Fatalf("open %s: %v", storage.Redact(e.url), err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
