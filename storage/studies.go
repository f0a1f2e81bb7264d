package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

var nan = math.NaN()

// MaxNameLength bounds a study's name (in bytes).
const MaxNameLength = 512

// CheckName reports whether name can name a study: non-empty, valid UTF-8,
// without control characters, at most MaxNameLength bytes. Names are stored
// and shown verbatim.
func CheckName(name string) error {
	switch {
	case name == "":
		return errors.New("study name: must not be empty")
	case len(name) > MaxNameLength:
		return fmt.Errorf("study name: %d bytes is longer than the limit of %d", len(name), MaxNameLength)
	case !utf8.ValidString(name):
		return errors.New("study name: must be valid UTF-8")
	case strings.IndexFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0:
		return errors.New("study name: must not contain control characters")
	}
	return nil
}

// CreateStudy creates a study. A name in use gives ErrStudyExists.
func (s *Store) CreateStudy(ctx context.Context, ns NewStudy) (*Study, error) {
	if err := CheckName(ns.Name); err != nil {
		return nil, err
	}
	if ns.Direction != Minimize && ns.Direction != Maximize {
		return nil, fmt.Errorf("create study %q: direction must be minimize or maximize, got %q", ns.Name, ns.Direction)
	}
	if ns.Budget < 0 {
		return nil, fmt.Errorf("create study %q: budget must be ≥ 0, got %d", ns.Name, ns.Budget)
	}
	spec := ns.Spec
	if len(spec) == 0 {
		spec = json.RawMessage("{}")
	}
	if !json.Valid(spec) {
		return nil, fmt.Errorf("create study %q: the spec is not valid JSON", ns.Name)
	}
	for i, nt := range ns.Trials {
		if nt.State != Waiting {
			return nil, fmt.Errorf("create study %q: its trial %d must be waiting, not %q", ns.Name, i, nt.State)
		}
	}
	var id int64
	err := s.retry(ctx, fmt.Sprintf("create study %q", ns.Name), func(ctx context.Context) error {
		// The study and its first trials are one transaction: a study is
		// never left without the trials it was created with.
		return s.inTx(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, s.d.q(`INSERT INTO studies (name, direction, spec, budget, seed, created_at)
				VALUES ($1, $2, $3, $4, $5, %[1]s) RETURNING id`), ns.Name, string(ns.Direction), string(spec), ns.Budget, ns.Seed).Scan(&id); err != nil {
				return err
			}
			for _, nt := range ns.Trials {
				if _, err := s.insertTrial(ctx, tx, id, nt, nil); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		if s.d.unique(err) {
			return nil, fmt.Errorf("create study %q: %w", ns.Name, ErrStudyExists)
		}
		return nil, err
	}
	return s.Study(ctx, id)
}

const studyColumns = `id, name, direction, spec, budget, seed, created_at`

func scanStudy(row interface{ Scan(...any) error }) (*Study, error) {
	st := &Study{}
	var spec string
	var created nullTime
	if err := row.Scan(&st.ID, &st.Name, &st.Direction, &spec, &st.Budget, &st.Seed, &created); err != nil {
		return nil, err
	}
	st.Spec, st.CreatedAt = json.RawMessage(spec), created.T
	return st, nil
}

// Study returns the study with the given id, with its attributes.
func (s *Store) Study(ctx context.Context, id int64) (*Study, error) {
	return s.oneStudy(ctx, fmt.Sprintf("study id %d", id), `SELECT `+studyColumns+` FROM studies WHERE id = $1`, id)
}

// StudyByName returns the study with the given name, with its attributes.
func (s *Store) StudyByName(ctx context.Context, name string) (*Study, error) {
	return s.oneStudy(ctx, fmt.Sprintf("study %q", name), `SELECT `+studyColumns+` FROM studies WHERE name = $1`, name)
}

func (s *Store) oneStudy(ctx context.Context, what, query string, arg any) (*Study, error) {
	var st *Study
	err := s.retry(ctx, "read "+what, func(ctx context.Context) error {
		var err error
		if st, err = scanStudy(s.db.QueryRowContext(ctx, query, arg)); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return ErrNotFound
			}
			return err
		}
		st.UserAttrs, st.SystemAttrs, err = s.studyAttrs(ctx, st.ID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (s *Store) studyAttrs(ctx context.Context, id int64) (user, system map[string]string, err error) {
	rows, err := s.db.QueryContext(ctx, `SELECT kind, key, value FROM study_attrs WHERE study_id = $1`, id)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	user, system = map[string]string{}, map[string]string{}
	for rows.Next() {
		var kind AttrKind
		var k, v string
		if err := rows.Scan(&kind, &k, &v); err != nil {
			return nil, nil, err
		}
		if kind == UserAttr {
			user[k] = v
		} else {
			system[k] = v
		}
	}
	return user, system, rows.Err()
}

// Studies returns every study, by id, with its attributes, in two queries.
func (s *Store) Studies(ctx context.Context) ([]*Study, error) {
	var out []*Study
	err := s.retry(ctx, "list studies", func(ctx context.Context) error {
		out = out[:0]
		rows, err := s.db.QueryContext(ctx, `SELECT `+studyColumns+` FROM studies ORDER BY id`)
		if err != nil {
			return err
		}
		byID := map[int64]*Study{}
		for rows.Next() {
			st, err := scanStudy(rows)
			if err != nil {
				rows.Close()
				return err
			}
			st.UserAttrs, st.SystemAttrs = map[string]string{}, map[string]string{}
			out = append(out, st)
			byID[st.ID] = st
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		attrs, err := s.db.QueryContext(ctx, `SELECT study_id, kind, key, value FROM study_attrs`)
		if err != nil {
			return err
		}
		defer attrs.Close()
		for attrs.Next() {
			var id int64
			var kind AttrKind
			var k, v string
			if err := attrs.Scan(&id, &kind, &k, &v); err != nil {
				return err
			}
			if st := byID[id]; st != nil {
				if kind == UserAttr {
					st.UserAttrs[k] = v
				} else {
					st.SystemAttrs[k] = v
				}
			}
		}
		return attrs.Err()
	})
	return out, err
}

// DeleteStudy deletes a study and its trials.
func (s *Store) DeleteStudy(ctx context.Context, id int64) error {
	return s.retry(ctx, fmt.Sprintf("delete study id %d", id), func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, `DELETE FROM studies WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}

// SetStudyAttr sets a study attribute.
func (s *Store) SetStudyAttr(ctx context.Context, id int64, kind AttrKind, key, value string) error {
	return s.retry(ctx, fmt.Sprintf("set %s attribute %q of study id %d", kind, key, id), func(ctx context.Context) error {
		_, err := s.db.ExecContext(ctx, `INSERT INTO study_attrs (study_id, kind, key, value) VALUES ($1, $2, $3, $4)
			ON CONFLICT (study_id, kind, key) DO UPDATE SET value = excluded.value`, id, string(kind), key, value)
		if err != nil && s.d.foreignKey(err) {
			return ErrNotFound
		}
		return err
	})
}

// setStudyDirection changes a study's direction (for Goptuna, which sets it
// after creating the study).
func (s *Store) setStudyDirection(ctx context.Context, id int64, dir Direction) error {
	if dir != Minimize && dir != Maximize {
		return fmt.Errorf("set direction of study id %d: want minimize or maximize, got %q", id, dir)
	}
	return s.retry(ctx, fmt.Sprintf("set direction of study id %d", id), func(ctx context.Context) error {
		res, err := s.db.ExecContext(ctx, `UPDATE studies SET direction = $2 WHERE id = $1`, id, string(dir))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNotFound
		}
		return nil
	})
}
