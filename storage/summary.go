package storage

import (
	"context"
	"database/sql"
	"math"
)

// Summary is a study's figures for monitoring.
type Summary struct {
	StudyID   int64
	Name      string
	Direction Direction
	Budget    int
	Trials    map[State]int
	// Best is the best complete trial's value and BestFloodLevel its
	// "flood_level" parameter; NaN when there is none.
	Best, BestFloodLevel float64
	// Reaped counts the trials failed because their lease expired.
	Reaped int
}

// Summaries returns every study's figures in four queries, whatever the
// number of studies and trials: what a metrics scrape reads.
func (s *Store) Summaries(ctx context.Context) ([]Summary, error) {
	var out []Summary
	err := s.retry(ctx, "summarise the studies", func(ctx context.Context) error {
		out = out[:0]
		byID := map[int64]*Summary{}
		var order []int64
		if err := eachRow(ctx, s.db, `SELECT id, name, direction, budget FROM studies WHERE id > $1 ORDER BY id`, 0, func(r *sql.Rows) error {
			var sum Summary
			if err := r.Scan(&sum.StudyID, &sum.Name, &sum.Direction, &sum.Budget); err != nil {
				return err
			}
			sum.Trials, sum.Best, sum.BestFloodLevel = map[State]int{}, math.NaN(), math.NaN()
			byID[sum.StudyID] = &sum
			order = append(order, sum.StudyID)
			return nil
		}); err != nil {
			return err
		}
		if err := eachRow(ctx, s.db, `SELECT study_id, state, count(*) FROM trials WHERE study_id > $1 GROUP BY study_id, state`, 0, func(r *sql.Rows) error {
			var id int64
			var st State
			var n int
			if err := r.Scan(&id, &st, &n); err != nil {
				return err
			}
			if sum := byID[id]; sum != nil {
				sum.Trials[st] = n
			}
			return nil
		}); err != nil {
			return err
		}
		if err := eachRow(ctx, s.db, `SELECT t.study_id, count(*) FROM trial_attrs a JOIN trials t ON t.id = a.trial_id
			WHERE a.kind = 'system' AND a.key = $1 AND a.value LIKE 'lease expired%' GROUP BY t.study_id`, FailReasonAttr, func(r *sql.Rows) error {
			var id int64
			var n int
			if err := r.Scan(&id, &n); err != nil {
				return err
			}
			if sum := byID[id]; sum != nil {
				sum.Reaped = n
			}
			return nil
		}); err != nil {
			return err
		}
		// The best complete trial of each study, by its direction, and its
		// flood level.
		if err := eachRow(ctx, s.db, `SELECT study_id, value, fl FROM (
				SELECT t.study_id, t.value, p.value AS fl, ROW_NUMBER() OVER (PARTITION BY t.study_id
					ORDER BY CASE WHEN s.direction = 'maximize' THEN -t.value ELSE t.value END, t.number) AS rn
				FROM trials t JOIN studies s ON s.id = t.study_id
				LEFT JOIN trial_params p ON p.trial_id = t.id AND p.name = $1
				WHERE t.state = 'complete' AND t.value IS NOT NULL) x
			WHERE rn = 1`, "flood_level", func(r *sql.Rows) error {
			var id int64
			var best float64
			var fl sql.NullFloat64
			if err := r.Scan(&id, &best, &fl); err != nil {
				return err
			}
			if sum := byID[id]; sum != nil {
				sum.Best = best
				if fl.Valid {
					sum.BestFloodLevel = fl.Float64
				}
			}
			return nil
		}); err != nil {
			return err
		}
		for _, id := range order {
			out = append(out, *byID[id])
		}
		return nil
	})
	return out, err
}
