package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// FixedParamsAttr is the system attribute in which Goptuna looks for the
// parameters a waiting trial must use; retries carry their trial's there.
const FixedParamsAttr = "fixed_params"

// FailReasonAttr is the system attribute that says why a trial failed.
const FailReasonAttr = "fail_reason"

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateTrial creates a trial in a study with the next number. A trial
// that would exceed the study's budget is refused with ErrBudgetExhausted;
// trials count toward the budget unless they failed and were retried. The
// returned trial has the stored ID, Number and State and the given details;
// its times are not read back (Trial reads them).
func (s *Store) CreateTrial(ctx context.Context, studyID int64, nt NewTrial) (*Trial, error) {
	switch nt.State {
	case Waiting, Running, Complete, Pruned, Fail:
	default:
		return nil, fmt.Errorf("create trial in study id %d: unknown state %q", studyID, nt.State)
	}
	if nt.State == Running && nt.Worker == "" {
		return nil, fmt.Errorf("create trial in study id %d: a running trial needs a worker", studyID)
	}
	var t *Trial
	err := s.retry(ctx, fmt.Sprintf("create trial in study id %d", studyID), func(ctx context.Context) error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			var err error
			t, err = s.insertTrial(ctx, tx, studyID, nt, nil)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	t.Params, t.Intermediate = copyMap(nt.Params), copyMap(nt.Intermediate)
	t.UserAttrs, t.SystemAttrs = copyMap(nt.UserAttrs), copyMap(nt.SystemAttrs)
	if nt.State.Final() {
		t.Value = nt.Value
	}
	return t, nil
}

func copyMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// insertTrial takes the study's next number and inserts the trial, with its
// parameters, values and attributes, and returns it without its details. A
// retry (of non-nil) takes the place of the trial it retries, so the budget
// is not checked for it.
func (s *Store) insertTrial(ctx context.Context, tx *sql.Tx, studyID int64, nt NewTrial, of *Trial) (*Trial, error) {
	// Taking the number locks the study's row until the transaction ends
	// (SQLite's write lock is already held): creators take turns here, so
	// the budget check below sees every trial created before.
	var budget, number int
	err := tx.QueryRowContext(ctx, `UPDATE studies SET next_number = next_number + 1 WHERE id = $1
		RETURNING budget, next_number - 1`, studyID).Scan(&budget, &number)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("study id %d: %w", studyID, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	if budget > 0 && of == nil {
		var used int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM trials WHERE study_id = $1 AND retried_by IS NULL`, studyID).Scan(&used); err != nil {
			return nil, err
		}
		if used >= budget {
			// The caller rolls back, number included.
			return nil, fmt.Errorf("%w (%d of %d trials)", ErrBudgetExhausted, used, budget)
		}
	}
	var attempt int
	var retryOf any
	if of != nil {
		attempt, retryOf = of.Attempt+1, of.ID
	}
	started := nt.State != Waiting
	t := &Trial{StudyID: studyID, Number: number, State: nt.State, Value: nan, Worker: nt.Worker, Attempt: attempt}
	if nt.State.Final() {
		t.Value = nt.Value
	}
	if of != nil {
		t.RetryOf = of.ID
	}
	var startedAt, completedAt, heartbeatAt nullTime
	err = tx.QueryRowContext(ctx, s.d.q(`INSERT INTO trials (study_id, number, state, value, started_at, completed_at, worker, heartbeat_at, attempt, retry_of)
		VALUES ($1, $2, $3, $4,
			CASE WHEN $5 THEN %[1]s END, CASE WHEN $6 THEN %[1]s END, $7, CASE WHEN $8 THEN %[1]s END, $9, $10)
		RETURNING id, started_at, completed_at, heartbeat_at`),
		studyID, number, string(nt.State), nullIfNaN(nt.Value), started, nt.State.Final(), nt.Worker, nt.State == Running, attempt, retryOf).Scan(&t.ID, &startedAt, &completedAt, &heartbeatAt)
	if err != nil {
		return nil, err
	}
	t.StartedAt, t.CompletedAt, t.HeartbeatAt = startedAt.T, completedAt.T, heartbeatAt.T
	if err := s.insertDetails(ctx, tx, t.ID, nt); err != nil {
		return nil, err
	}
	if of != nil {
		if _, err := tx.ExecContext(ctx, `UPDATE trials SET retried_by = $2 WHERE id = $1`, of.ID, t.ID); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// insertDetails inserts a new trial's parameters, values and attributes, one
// statement per table.
func (s *Store) insertDetails(ctx context.Context, tx querier, id int64, nt NewTrial) error {
	var params, values, attrs []any
	for _, name := range sortedKeys(nt.Params) {
		p := nt.Params[name]
		if !json.Valid(p.Distribution) {
			return fmt.Errorf("parameter %q: the distribution is not valid JSON", name)
		}
		params = append(params, id, name, p.Value, string(p.Distribution))
	}
	for step, v := range nt.Intermediate {
		values = append(values, id, step, nullIfNaN(v))
	}
	for _, kv := range []struct {
		kind AttrKind
		m    map[string]string
	}{{UserAttr, nt.UserAttrs}, {SystemAttr, nt.SystemAttrs}} {
		for _, k := range sortedKeys(kv.m) {
			attrs = append(attrs, id, string(kv.kind), k, kv.m[k])
		}
	}
	for _, ins := range []struct {
		head string
		cols int
		args []any
	}{
		{`INSERT INTO trial_params (trial_id, name, value, distribution) VALUES `, 4, params},
		{`INSERT INTO trial_values (trial_id, step, value) VALUES `, 3, values},
		{`INSERT INTO trial_attrs (trial_id, kind, key, value) VALUES `, 4, attrs},
	} {
		// Rows go in chunks that stay below the databases' limits on
		// parameters per statement (SQLite: 32,766; PostgreSQL: 65,535).
		for rest := ins.args; len(rest) > 0; {
			n := min(len(rest), maxInsertRows*ins.cols)
			if _, err := tx.ExecContext(ctx, ins.head+placeholders(n/ins.cols, ins.cols), rest[:n]...); err != nil {
				return err
			}
			rest = rest[n:]
		}
	}
	return nil
}

// maxInsertRows is the most rows one INSERT of trial details carries.
const maxInsertRows = 2000

// placeholders returns "($1, $2), ($3, $4)" for rows=2, cols=2.
func placeholders(rows, cols int) string {
	var b strings.Builder
	n := 1
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", n)
			n++
		}
		b.WriteByte(')')
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// setParam records a parameter of a running trial.
func (s *Store) setParam(ctx context.Context, trialID int64, worker, name string, p Param) error {
	if !json.Valid(p.Distribution) {
		return fmt.Errorf("set parameter %q of trial id %d: the distribution is not valid JSON", name, trialID)
	}
	return s.fenced(ctx, fmt.Sprintf("set parameter %q of trial id %d", name, trialID), trialID, worker,
		`INSERT INTO trial_params (trial_id, name, value, distribution) SELECT id, $3, $4, $5 FROM trials WHERE `+fence+`
		ON CONFLICT (trial_id, name) DO UPDATE SET value = excluded.value, distribution = excluded.distribution`,
		name, p.Value, string(p.Distribution))
}

// Report records the intermediate value of a running trial at a step.
func (s *Store) Report(ctx context.Context, trialID int64, worker string, step int, value float64) error {
	return s.fenced(ctx, fmt.Sprintf("report step %d of trial id %d", step, trialID), trialID, worker,
		`INSERT INTO trial_values (trial_id, step, value) SELECT id, $3, $4 FROM trials WHERE `+fence+`
		ON CONFLICT (trial_id, step) DO UPDATE SET value = excluded.value`,
		step, nullIfNaN(value))
}

// setValue sets the value of a running trial.
func (s *Store) setValue(ctx context.Context, trialID int64, worker string, value float64) error {
	return s.fenced(ctx, fmt.Sprintf("set the value of trial id %d", trialID), trialID, worker,
		`UPDATE trials SET value = $3 WHERE `+fence, nullIfNaN(value))
}

// SetTrialAttr sets an attribute of a trial that is waiting, or running
// under worker; ErrNotUpdatable for a finished trial.
func (s *Store) SetTrialAttr(ctx context.Context, trialID int64, worker string, kind AttrKind, key, value string) error {
	return s.retry(ctx, fmt.Sprintf("set %s attribute %q of trial id %d", kind, key, trialID), func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, `INSERT INTO trial_attrs (trial_id, kind, key, value)
			SELECT id, $3, $4, $5 FROM trials WHERE id = $1 AND (state = 'waiting' OR (state = 'running' AND worker = $2))
			ON CONFLICT (trial_id, kind, key) DO UPDATE SET value = excluded.value`, trialID, worker, string(kind), key, value)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			l, err := s.trialState(ctx, s.db, trialID)
			if err != nil {
				return err
			}
			if l.state.Final() {
				return fmt.Errorf("%w: trial id %d is %s", ErrNotUpdatable, trialID, l.state)
			}
			return s.leaseError(ctx, s.db, trialID, worker)
		}
		return nil
	})
}

// Finish ends worker's running trial in a final state, with value unless it
// is NaN (then the value already set stays). A trial that is not running
// under worker (finished, reaped, given back) gives ErrLeaseLost.
func (s *Store) Finish(ctx context.Context, trialID int64, worker string, state State, value float64) error {
	if !state.Final() {
		return fmt.Errorf("finish trial id %d: %q is not a final state", trialID, state)
	}
	retried := false
	return s.retry(ctx, fmt.Sprintf("finish trial id %d as %s", trialID, state), func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE trials SET state = $3, value = COALESCE($4, value), completed_at = %[1]s WHERE `+fence),
			trialID, worker, string(state), nullIfNaN(value))
		if err != nil {
			retried = true
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			// After a lost connection the first attempt may have
			// committed: then the trial is in this state under this
			// worker, and no one else could have put it there (a reaped or
			// given-back trial fails with a fail_reason).
			if l, lerr := s.trialState(ctx, s.db, trialID); retried && lerr == nil && l.state == state && l.worker == worker {
				return nil
			}
			return s.leaseError(ctx, s.db, trialID, worker)
		}
		return nil
	})
}

const trialColumns = `id, study_id, number, state, value, started_at, completed_at, worker, heartbeat_at, attempt, retry_of, retried_by`

func scanTrial(row interface{ Scan(...any) error }) (*Trial, error) {
	t := &Trial{}
	var value nullFloat
	var started, completed, heartbeat nullTime
	var retryOf, retriedBy sql.NullInt64
	if err := row.Scan(&t.ID, &t.StudyID, &t.Number, &t.State, &value, &started, &completed, &t.Worker, &heartbeat, &t.Attempt, &retryOf, &retriedBy); err != nil {
		return nil, err
	}
	t.Value, t.StartedAt, t.CompletedAt, t.HeartbeatAt = value.F, started.T, completed.T, heartbeat.T
	t.RetryOf, t.RetriedBy = retryOf.Int64, retriedBy.Int64
	t.Params, t.Intermediate = map[string]Param{}, map[int]float64{}
	t.UserAttrs, t.SystemAttrs = map[string]string{}, map[string]string{}
	return t, nil
}

// Trial returns a trial with its parameters, values and attributes.
func (s *Store) Trial(ctx context.Context, id int64) (*Trial, error) {
	var out *Trial
	// One statement: the trial's row joined with its details.
	query := `SELECT ` + prefixed("t.", trialColumns) + `, d.kind, d.name, d.num, d.text, d.step
		FROM trials t LEFT JOIN (` + s.details(`trial_id = $1`) + `) d ON true WHERE t.id = $1`
	err := s.retry(ctx, fmt.Sprintf("read trial id %d", id), func(ctx context.Context) error {
		out = nil
		return eachRow(ctx, s.db, query, id, func(r *sql.Rows) error {
			t, kind, err := scanTrialDetail(r)
			if err != nil {
				return err
			}
			if out == nil {
				out = t
			}
			if kind.kind != "" {
				kind.apply(out)
			}
			return nil
		})
	})
	if err == nil && out == nil {
		err = fmt.Errorf("read trial id %d: %w", id, ErrNotFound)
	}
	return out, err
}

// prefixed qualifies each column of a comma-separated list.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = prefix + parts[i]
	}
	return strings.Join(parts, ", ")
}

// scanTrialDetail scans a trial's row followed by a detail that may be NULL.
func scanTrialDetail(r *sql.Rows) (*Trial, detail, error) {
	var d detail
	var kind, name, text sql.NullString
	var step sql.NullInt64
	t, err := scanTrial(rowScanner(func(dest ...any) error {
		return r.Scan(append(dest, &kind, &name, &d.num, &text, &step)...)
	}))
	d.kind, d.name, d.text, d.step = kind.String, name.String, text.String, int(step.Int64)
	return t, d, err
}

type rowScanner func(dest ...any) error

func (f rowScanner) Scan(dest ...any) error { return f(dest...) }

// details is the query of the parameters, values and attributes of the
// trials matching where (by trial_id): one row per detail, with its kind
// ('param', 'value', 'user', 'system'), a name, a number and a text, as each
// kind needs.
func (s *Store) details(where string) string {
	return `SELECT trial_id, 'param' AS kind, name, value AS num, ` + s.d.jsonText("distribution") + ` AS text, 0 AS step FROM trial_params WHERE ` + where + `
		UNION ALL SELECT trial_id, 'value', '', value, '', step FROM trial_values WHERE ` + where + `
		UNION ALL SELECT trial_id, kind, key, NULL, value, 0 FROM trial_attrs WHERE ` + where
}

// detail is one row of details.
type detail struct {
	kind, name, text string
	num              nullFloat
	step             int
}

func (d *detail) apply(t *Trial) {
	switch d.kind {
	case "param":
		t.Params[d.name] = Param{Value: d.num.F, Distribution: json.RawMessage(d.text)}
	case "value":
		t.Intermediate[d.step] = d.num.F
	case string(UserAttr):
		t.UserAttrs[d.name] = d.text
	default:
		t.SystemAttrs[d.name] = d.text
	}
}

// TrialHead returns the row of a study's trial with the given number: its
// id, state, value, times, worker and retry links, without its parameters,
// values and attributes (one indexed read; TrialByNumber reads them too).
func (s *Store) TrialHead(ctx context.Context, studyID int64, number int) (*Trial, error) {
	var t *Trial
	err := s.retry(ctx, fmt.Sprintf("read trial %d of study id %d", number, studyID), func(ctx context.Context) error {
		var err error
		t, err = scanTrial(s.db.QueryRowContext(ctx, `SELECT `+trialColumns+` FROM trials WHERE study_id = $1 AND number = $2`, studyID, number))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("trial %d of study id %d: %w", number, studyID, ErrNotFound)
		}
		return err
	})
	return t, err
}

// TrialByNumber returns the trial of a study with the given number.
func (s *Store) TrialByNumber(ctx context.Context, studyID int64, number int) (*Trial, error) {
	id, err := s.queryID(ctx, fmt.Sprintf("read trial %d of study id %d", number, studyID),
		`SELECT id FROM trials WHERE study_id = $1 AND number = $2`, studyID, number)
	if err != nil {
		return nil, err
	}
	return s.Trial(ctx, id)
}

// Trials returns a study's trials by number, with their parameters, values
// and attributes, in a constant number of queries: one for the trials' ids
// and states, and four for the details of those not yet cached. A trial in
// a final state never changes again, so it is read once and then served
// from the store's cache, and the trials before the first one that is not
// final are not even listed again: TPE, which reloads every trial at every
// suggestion, reads only the running ones and those created since. The
// returned trials may be shared with other callers: do not modify them.
func (s *Store) Trials(ctx context.Context, studyID int64) ([]*Trial, error) {
	var out []*Trial
	err := s.retry(ctx, fmt.Sprintf("read the trials of study id %d", studyID), func(ctx context.Context) error {
		var err error
		prefix := s.final.prefix(studyID)
		out, err = s.trialsAfter(ctx, studyID, prefix)
		if errors.Is(err, errStalePrefix) {
			s.final.setPrefix(studyID, nil)
			prefix = nil
			out, err = s.trialsAfter(ctx, studyID, nil)
		}
		if err != nil {
			return err
		}
		// The final prefix grows with the trials that ended since.
		k := len(prefix)
		for k < len(out) && out[k].State.Final() && out[k].Number == k {
			k++
		}
		if k > len(prefix) {
			s.final.setPrefix(studyID, out[:k:k])
		}
		return nil
	})
	return out, err
}

// errStalePrefix says that a study's cached final prefix no longer matches
// its trials (the schema was reset and the study's id reused).
var errStalePrefix = errors.New("the cached trials of the study are stale")

// trialsAfter reads the study's trials from the end of its final prefix
// on, and returns the prefix followed by them; errStalePrefix if the
// prefix's last trial is not the study's any more.
func (s *Store) trialsAfter(ctx context.Context, studyID int64, prefix []*Trial) ([]*Trial, error) {
	// No transaction: a trial that changes between the queries is read in
	// its newer state, which is as good (and two round trips fewer).
	tx := s.db
	from := 0
	if len(prefix) > 0 {
		from = len(prefix) - 1 // the last of the prefix, to check it
	}
	type ref struct {
		id    int64
		final bool
	}
	var refs []ref
	var missing []int64
	cached := map[int64]*Trial{}
	checked := len(prefix) == 0
	if err := eachRow(ctx, tx, `SELECT id, state, completed_at, number FROM trials WHERE study_id = $1 AND number >= $2 ORDER BY number`, studyID, func(r *sql.Rows) error {
		var id int64
		var st State
		var completed nullTime
		var number int
		if err := r.Scan(&id, &st, &completed, &number); err != nil {
			return err
		}
		if !checked {
			last := prefix[len(prefix)-1]
			if number != last.Number || id != last.ID || !completed.T.Equal(last.CompletedAt) {
				return errStalePrefix
			}
			checked = true
			return nil
		}
		refs = append(refs, ref{id, st.Final()})
		if t := s.final.get(id, completed.T); t != nil && st.Final() {
			cached[id] = t
		} else {
			missing = append(missing, id)
		}
		return nil
	}, from); err != nil {
		return nil, err
	}
	if !checked {
		return nil, errStalePrefix // the prefix's last trial is gone
	}
	var loaded []*Trial
	var err error
	switch {
	case len(missing) == 0:
	case len(missing) == len(refs) && from == 0:
		loaded, err = s.readTrials(ctx, tx, `study_id = $1`, `trial_id IN (SELECT id FROM trials WHERE study_id = $1)`, studyID)
	default:
		list := s.d.idList(missing)
		loaded, err = s.readTrials(ctx, tx, s.d.inList("id"), s.d.inList("trial_id"), list)
	}
	if err != nil {
		return nil, err
	}
	for _, t := range loaded {
		cached[t.ID] = t
		s.final.put(t)
	}
	out := make([]*Trial, len(prefix), len(prefix)+len(refs))
	copy(out, prefix)
	for _, r := range refs {
		if t := cached[r.id]; t != nil {
			out = append(out, t)
		}
	}
	return out, nil
}

// readTrials reads the trials matching where, and their details matching
// detailWhere (the same trials, by trial_id): two queries, one for the
// trials and one for their parameters, values and attributes together.
func (s *Store) readTrials(ctx context.Context, q querier, where, detailWhere string, arg any) ([]*Trial, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+trialColumns+` FROM trials WHERE `+where+` ORDER BY number`, arg)
	if err != nil {
		return nil, err
	}
	var out []*Trial
	byID := map[int64]*Trial{}
	for rows.Next() {
		t, err := scanTrial(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, t)
		byID[t.ID] = t
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	err = eachRow(ctx, q, s.details(detailWhere), arg, func(r *sql.Rows) error {
		var id int64
		var d detail
		if err := r.Scan(&id, &d.kind, &d.name, &d.num, &d.text, &d.step); err != nil {
			return err
		}
		if t := byID[id]; t != nil {
			d.apply(t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// trialAttrs returns one kind of a trial's attributes, in one query.
func (s *Store) trialAttrs(ctx context.Context, trialID int64, kind AttrKind) (map[string]string, error) {
	out := map[string]string{}
	err := s.retry(ctx, fmt.Sprintf("read the %s attributes of trial id %d", kind, trialID), func(ctx context.Context) error {
		clear(out)
		found := false
		err := eachRow(ctx, s.db, `SELECT t.id, a.key, a.value FROM trials t LEFT JOIN trial_attrs a ON a.trial_id = t.id AND a.kind = $2 WHERE t.id = $1`, trialID, func(r *sql.Rows) error {
			var id int64
			var k, v sql.NullString
			if err := r.Scan(&id, &k, &v); err != nil {
				return err
			}
			found = true
			if k.Valid {
				out[k.String] = v.String
			}
			return nil
		}, string(kind))
		if err == nil && !found {
			return ErrNotFound
		}
		return err
	})
	return out, err
}

func (s *Store) params(ctx context.Context, q querier, where string, arg any) (map[int64]map[string]Param, error) {
	out := map[int64]map[string]Param{}
	err := eachRow(ctx, q, `SELECT trial_id, name, value, distribution FROM trial_params WHERE `+where, arg, func(r *sql.Rows) error {
		var id int64
		var name, dist string
		var v float64
		if err := r.Scan(&id, &name, &v, &dist); err != nil {
			return err
		}
		if out[id] == nil {
			out[id] = map[string]Param{}
		}
		out[id][name] = Param{Value: v, Distribution: json.RawMessage(dist)}
		return nil
	})
	return out, err
}

func eachRow(ctx context.Context, q querier, query string, arg any, fn func(*sql.Rows) error, more ...any) error {
	rows, err := q.QueryContext(ctx, query, append([]any{arg}, more...)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Counts returns how many trials of a study are in each state, and how
// many count toward its budget (all but failed trials that were retried).
func (s *Store) Counts(ctx context.Context, studyID int64) (byState map[State]int, counted int, err error) {
	err = s.retry(ctx, fmt.Sprintf("count the trials of study id %d", studyID), func(ctx context.Context) error {
		byState, counted = map[State]int{}, 0
		return eachRow(ctx, s.db, `SELECT state, retried_by IS NULL, count(*) FROM trials WHERE study_id = $1 GROUP BY state, retried_by IS NULL`, studyID, func(r *sql.Rows) error {
			var st State
			var counts bool
			var n int
			if err := r.Scan(&st, &counts, &n); err != nil {
				return err
			}
			byState[st] += n
			if counts {
				counted += n
			}
			return nil
		})
	})
	return byState, counted, err
}

// Best returns the study's best complete trial by its direction;
// ErrNotFound when no trial is complete with a value.
func (s *Store) Best(ctx context.Context, studyID int64) (*Trial, error) {
	st, err := s.Study(ctx, studyID)
	if err != nil {
		return nil, err
	}
	order := "ASC"
	if st.Direction == Maximize {
		order = "DESC"
	}
	id, err := s.queryID(ctx, fmt.Sprintf("find the best trial of study id %d", studyID),
		`SELECT id FROM trials WHERE study_id = $1 AND state = 'complete' AND value IS NOT NULL
			ORDER BY value `+order+`, number LIMIT 1`, studyID)
	if err != nil {
		return nil, err
	}
	return s.Trial(ctx, id)
}

// trialStudy returns the id of a trial's study.
func (s *Store) trialStudy(ctx context.Context, trialID int64) (int64, error) {
	return s.queryID(ctx, fmt.Sprintf("read trial id %d", trialID), `SELECT study_id FROM trials WHERE id = $1`, trialID)
}

// queryID runs a query that yields one id; no row is ErrNotFound.
func (s *Store) queryID(ctx context.Context, what, query string, args ...any) (int64, error) {
	var id int64
	err := s.retry(ctx, what, func(ctx context.Context) error {
		err := s.db.QueryRowContext(ctx, query, args...).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	return id, err
}
