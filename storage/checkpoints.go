package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// CheckpointInfo describes a stored checkpoint, without its data.
type CheckpointInfo struct {
	Key     string
	Epoch   int
	Meta    string
	Bytes   int64 // the length of the data
	Created time.Time
}

// checkText reports whether s can be stored in a TEXT column of either
// dialect: PostgreSQL refuses invalid UTF-8 and NUL bytes.
func checkText(what, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("the %s must be valid UTF-8", what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("the %s must not contain NUL bytes", what)
	}
	return nil
}

// lockStudy locks the study's row until tx ends, so that the writers of the
// study's checkpoints take turns; ErrNotFound when there is no such study.
// On PostgreSQL the lock is FOR NO KEY UPDATE: it keeps out other lockers
// and writers of the row, not the inserts of rows that refer to it. SQLite
// needs no lock: its write transactions are serialised (BEGIN IMMEDIATE).
func (s *Store) lockStudy(ctx context.Context, tx *sql.Tx, studyID int64) error {
	query := `SELECT id FROM studies WHERE id = $1`
	if s.d == postgresDialect {
		query += ` FOR NO KEY UPDATE`
	}
	var id int64
	if err := tx.QueryRowContext(ctx, query, studyID).Scan(&id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	}
	return nil
}

// PutCheckpoint stores data, with meta, as the checkpoint of epoch under key
// in a study, and reports whether it did. Nothing is stored, and the result
// is false with a nil error, when a checkpoint is already stored under the
// study, key and epoch (the first writer wins: the data of equal keys is
// equal, so the one stored is as good as this one), or when the study's
// stored checkpoints and data would together exceed limit bytes (so a limit
// of 0 stores nothing). The limit holds however many processes put at once:
// they take turns on the study's row. A study that does not exist is
// ErrNotFound; an empty key or data, an epoch below 1 or a negative limit is
// an error. A study's checkpoints are deleted with it (DeleteStudy).
func (s *Store) PutCheckpoint(ctx context.Context, studyID int64, key string, epoch int, meta string, data []byte, limit int64) (bool, error) {
	what := fmt.Sprintf("put checkpoint %q epoch %d of study id %d", key, epoch, studyID)
	var bad error
	switch {
	case key == "":
		bad = errors.New("the key must not be empty")
	case epoch < 1:
		bad = errors.New("the epoch must be ≥ 1")
	case len(data) == 0:
		bad = errors.New("the data must not be empty")
	case limit < 0:
		bad = fmt.Errorf("the limit must be ≥ 0 bytes, got %d", limit)
	default:
		if bad = checkText("key", key); bad == nil {
			bad = checkText("meta", meta)
		}
	}
	if bad != nil {
		return false, fmt.Errorf("%s: %w", what, bad)
	}
	var stored bool
	err := s.retry(ctx, what, func(ctx context.Context) error {
		stored = false
		return s.inTx(ctx, func(tx *sql.Tx) error {
			if err := s.lockStudy(ctx, tx, studyID); err != nil {
				return err
			}
			var used int64
			if err := tx.QueryRowContext(ctx, `SELECT CAST(COALESCE(sum(bytes), 0) AS BIGINT) FROM checkpoints WHERE study_id = $1`, studyID).Scan(&used); err != nil {
				return err
			}
			if used > limit-int64(len(data)) {
				return nil
			}
			res, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO checkpoints (study_id, key, epoch, meta, bytes, data, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, %[1]s) ON CONFLICT (study_id, key, epoch) DO NOTHING`),
				studyID, key, epoch, meta, int64(len(data)), data)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			stored = n == 1
			return err
		})
	})
	if err != nil {
		return false, err
	}
	return stored, nil
}

// Checkpoints returns the checkpoints stored under key in a study, by epoch,
// without their data; none for a study that does not exist.
func (s *Store) Checkpoints(ctx context.Context, studyID int64, key string) ([]CheckpointInfo, error) {
	var out []CheckpointInfo
	err := s.retry(ctx, fmt.Sprintf("list checkpoints %q of study id %d", key, studyID), func(ctx context.Context) error {
		out = out[:0]
		return eachRow(ctx, s.db, `SELECT key, epoch, meta, bytes, created_at FROM checkpoints
			WHERE study_id = $1 AND key = $2 ORDER BY epoch`, studyID, func(r *sql.Rows) error {
			var c CheckpointInfo
			var created nullTime
			if err := r.Scan(&c.Key, &c.Epoch, &c.Meta, &c.Bytes, &created); err != nil {
				return err
			}
			c.Created = created.T
			out = append(out, c)
			return nil
		}, key)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Checkpoint returns the data of the checkpoint of epoch under key in a
// study; ErrNotFound when none is stored.
func (s *Store) Checkpoint(ctx context.Context, studyID int64, key string, epoch int) ([]byte, error) {
	var data []byte
	err := s.retry(ctx, fmt.Sprintf("read checkpoint %q epoch %d of study id %d", key, epoch, studyID), func(ctx context.Context) error {
		err := s.db.QueryRowContext(ctx, `SELECT data FROM checkpoints WHERE study_id = $1 AND key = $2 AND epoch = $3`,
			studyID, key, epoch).Scan(&data)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return data, nil
}

// CheckpointUsage returns how many checkpoints a study has stored and their
// total bytes, the figure that PutCheckpoint's limit bounds; 0 and 0 for a
// study that does not exist.
func (s *Store) CheckpointUsage(ctx context.Context, studyID int64) (count int, bytes int64, err error) {
	err = s.retry(ctx, fmt.Sprintf("count the checkpoints of study id %d", studyID), func(ctx context.Context) error {
		return s.db.QueryRowContext(ctx, `SELECT count(*), CAST(COALESCE(sum(bytes), 0) AS BIGINT) FROM checkpoints WHERE study_id = $1`,
			studyID).Scan(&count, &bytes)
	})
	if err != nil {
		return 0, 0, err
	}
	return count, bytes, nil
}

// DeleteCheckpoints deletes every checkpoint of a study and returns how many
// it deleted and their total bytes: exactly those, even while others put
// checkpoints into the study. A study that does not exist is ErrNotFound.
// DeleteStudy deletes a study's checkpoints too, with the study.
func (s *Store) DeleteCheckpoints(ctx context.Context, studyID int64) (count int, bytes int64, err error) {
	err = s.retry(ctx, fmt.Sprintf("delete the checkpoints of study id %d", studyID), func(ctx context.Context) error {
		return s.inTx(ctx, func(tx *sql.Tx) error {
			// Under the study's lock no checkpoint comes between the count
			// and the delete.
			if err := s.lockStudy(ctx, tx, studyID); err != nil {
				return err
			}
			if err := tx.QueryRowContext(ctx, `SELECT count(*), CAST(COALESCE(sum(bytes), 0) AS BIGINT) FROM checkpoints WHERE study_id = $1`,
				studyID).Scan(&count, &bytes); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `DELETE FROM checkpoints WHERE study_id = $1`, studyID)
			return err
		})
	})
	if err != nil {
		return 0, 0, err
	}
	return count, bytes, nil
}
