package storage

// Leases: a running trial belongs to the worker that claimed it; its
// writes are fenced by the worker's name (fence), its lease renewed by its
// heartbeat, given back when the worker stops, and reaped when the worker
// stops renewing it.

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ClaimWaiting claims the study's waiting trial with the lowest number for
// worker and returns it; ErrNotFound when none waits. Concurrent claimers
// never get the same trial.
func (s *Store) ClaimWaiting(ctx context.Context, studyID int64, worker string) (*Trial, error) {
	id, err := s.queryID(ctx, fmt.Sprintf("claim a waiting trial of study id %d", studyID),
		s.d.q(`UPDATE trials SET state = 'running', worker = $2, started_at = %[1]s, heartbeat_at = %[1]s
			WHERE id = (SELECT id FROM trials WHERE study_id = $1 AND state = 'waiting' ORDER BY number LIMIT 1%[3]s)
			RETURNING id`), studyID, worker)
	if err != nil {
		return nil, err
	}
	return s.Trial(ctx, id)
}

// claim claims the waiting trial trialID for worker; ErrNotUpdatable when
// it is not waiting (another worker claimed it first).
func (s *Store) claim(ctx context.Context, trialID int64, worker string) error {
	return s.retry(ctx, fmt.Sprintf("claim trial id %d", trialID), func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, s.d.q(`UPDATE trials SET state = 'running', worker = $2, started_at = %[1]s, heartbeat_at = %[1]s
			WHERE id = $1 AND state = 'waiting'`), trialID, worker)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := s.trialState(ctx, s.db, trialID); err != nil {
				return err
			}
			return ErrNotUpdatable
		}
		return nil
	})
}

// fence is the condition under which worker may write trial $1: the trial
// runs under worker $2.
const fence = `id = $1 AND state = 'running' AND worker = $2`

// fenced runs a write that names fence in its WHERE clause and translates
// "no row" into ErrLeaseLost or ErrNotFound.
func (s *Store) fenced(ctx context.Context, what string, trialID int64, worker string, query string, args ...any) error {
	return s.retry(ctx, what, func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, query, append([]any{trialID, worker}, args...)...)
		if err != nil {
			if s.d.foreignKey(err) {
				return ErrNotFound
			}
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return s.leaseError(ctx, s.db, trialID, worker)
		}
		return nil
	})
}

type trialLease struct {
	state  State
	worker string
}

func (s *Store) trialState(ctx context.Context, q querier, trialID int64) (trialLease, error) {
	var l trialLease
	err := q.QueryRowContext(ctx, `SELECT state, worker FROM trials WHERE id = $1`, trialID).Scan(&l.state, &l.worker)
	if errors.Is(err, sql.ErrNoRows) {
		return l, fmt.Errorf("trial id %d: %w", trialID, ErrNotFound)
	}
	return l, err
}

func (s *Store) leaseError(ctx context.Context, q querier, trialID int64, worker string) error {
	l, err := s.trialState(ctx, q, trialID)
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: trial id %d is %s under worker %q, not running under %q", ErrLeaseLost, trialID, l.state, l.worker, worker)
}

// Heartbeat renews worker's lease on a running trial.
func (s *Store) Heartbeat(ctx context.Context, trialID int64, worker string) error {
	return s.fenced(ctx, fmt.Sprintf("heartbeat of trial id %d", trialID), trialID, worker,
		s.d.q(`UPDATE trials SET heartbeat_at = %[1]s WHERE `+fence))
}

// Renew renews worker's lease on a running trial, as Heartbeat does, and
// returns the time of the renewal on the database's clock: the lease runs
// out a grace period after it (see Reap).
func (s *Store) Renew(ctx context.Context, trialID int64, worker string) (time.Time, error) {
	var at nullTime
	err := s.retry(ctx, fmt.Sprintf("renew the lease of trial id %d", trialID), func(ctx context.Context) error {
		err := s.db.QueryRowContext(ctx, s.d.q(`UPDATE trials SET heartbeat_at = %[1]s WHERE `+fence+` RETURNING heartbeat_at`),
			trialID, worker).Scan(&at)
		if errors.Is(err, sql.ErrNoRows) {
			return s.leaseError(ctx, s.db, trialID, worker)
		}
		return err
	})
	return at.T, err
}

// GiveBack fails worker's running trial with reason and enqueues a retry
// with the same parameters (whatever the retry limit: the trial did not
// fail by itself), as a worker does when it stops. It returns the retry.
func (s *Store) GiveBack(ctx context.Context, trialID int64, worker, reason string) (*Trial, error) {
	var retryID int64
	err := s.retry(ctx, fmt.Sprintf("give back trial id %d", trialID), func(ctx context.Context) error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			var studyID int64
			var attempt int
			err := tx.QueryRowContext(ctx, s.d.q(`SELECT study_id, attempt FROM trials WHERE `+fence+`%[2]s`), trialID, worker).Scan(&studyID, &attempt)
			if errors.Is(err, sql.ErrNoRows) {
				return s.leaseError(ctx, tx, trialID, worker)
			} else if err != nil {
				return err
			}
			retryID, err = s.failAndRetry(ctx, tx, &Trial{ID: trialID, StudyID: studyID, Attempt: attempt}, reason, true)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return s.Trial(ctx, retryID)
}

// failAndRetry fails trial t (locked by the caller's transaction) with
// reason and, if retry is set, enqueues its retry, returning the retry's id.
func (s *Store) failAndRetry(ctx context.Context, tx *sql.Tx, t *Trial, reason string, retry bool) (int64, error) {
	if _, err := tx.ExecContext(ctx, s.d.q(`UPDATE trials SET state = 'fail', completed_at = %[1]s WHERE id = $1`), t.ID); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO trial_attrs (trial_id, kind, key, value) VALUES ($1, 'system', $2, $3)
		ON CONFLICT (trial_id, kind, key) DO UPDATE SET value = excluded.value`, t.ID, FailReasonAttr, reason); err != nil {
		return 0, err
	}
	if !retry {
		return 0, nil
	}
	params, err := s.params(ctx, tx, `trial_id = $1`, t.ID)
	if err != nil {
		return 0, err
	}
	// The retry keeps the trial's system attributes (what it is, such as a
	// baseline), but for why it failed.
	sys := map[string]string{}
	if err := eachRow(ctx, tx, `SELECT key, value FROM trial_attrs WHERE trial_id = $1 AND kind = 'system' AND key <> $2`, t.ID, func(r *sql.Rows) error {
		var k, v string
		if err := r.Scan(&k, &v); err != nil {
			return err
		}
		sys[k] = v
		return nil
	}, FailReasonAttr); err != nil {
		return 0, err
	}
	nt := NewTrial{State: Waiting, Value: nan, Params: params[t.ID], SystemAttrs: sys}
	if len(nt.Params) > 0 {
		fixed := make(map[string]float64, len(nt.Params))
		for name, p := range nt.Params {
			fixed[name] = p.Value
		}
		b, err := json.Marshal(fixed)
		if err != nil {
			return 0, err
		}
		nt.SystemAttrs[FixedParamsAttr] = string(b)
	}
	r, err := s.insertTrial(ctx, tx, t.StudyID, nt, t)
	if err != nil {
		return 0, err
	}
	return r.ID, nil
}

// Reaped is a trial that Reap failed, and its retry if one was enqueued.
type Reaped struct {
	StudyID, TrialID int64
	Number           int
	RetryID          int64 // 0 when the retry limit was reached
}

// Reap fails every running trial whose worker has not renewed its lease for
// longer than grace, by the database's clock, and enqueues a retry with the
// same parameters for those retried fewer than maxRetries times. Any number
// of workers may reap at once: each stale trial is reaped once, and a trial
// whose worker finishes it at the same moment stays finished.
func (s *Store) Reap(ctx context.Context, grace time.Duration, maxRetries int) ([]Reaped, error) {
	var all []Reaped
	for {
		batch, err := s.reapBatch(ctx, grace, maxRetries)
		all = append(all, batch...)
		if err != nil || len(batch) < reapBatch {
			return all, err
		}
	}
}

// reapBatch is the number of stale trials one transaction of Reap handles.
const reapBatch = 100

func (s *Store) reapBatch(ctx context.Context, grace time.Duration, maxRetries int) ([]Reaped, error) {
	var out []Reaped
	err := s.retry(ctx, "reap stale trials", func(ctx context.Context) error {
		out = out[:0]
		return s.inTx(ctx, func(tx *sql.Tx) error {
			rows, err := tx.QueryContext(ctx, s.d.q(`SELECT id, study_id, number, attempt FROM trials
				WHERE state = 'running' AND `+s.d.older("heartbeat_at", 1)+` ORDER BY id LIMIT $2%[3]s`), grace.Seconds(), reapBatch)
			if err != nil {
				return err
			}
			var stale []*Trial
			for rows.Next() {
				t := &Trial{}
				if err := rows.Scan(&t.ID, &t.StudyID, &t.Number, &t.Attempt); err != nil {
					rows.Close()
					return err
				}
				stale = append(stale, t)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			reason := fmt.Sprintf("lease expired: no heartbeat from its worker for more than %v", grace)
			for _, t := range stale {
				retry := t.Attempt < maxRetries
				id, err := s.failAndRetry(ctx, tx, t, reason, retry)
				if err != nil {
					return err
				}
				out = append(out, Reaped{StudyID: t.StudyID, TrialID: t.ID, Number: t.Number, RetryID: id})
			}
			return nil
		})
	})
	return out, err
}
