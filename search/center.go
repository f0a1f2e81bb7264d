package search

import (
	"context"
	"fmt"

	"github.com/floodtune/floodtune/objective"
)

// resolveCenter moves a centred flood-level range onto its estimate (see
// Param.Center) and reports whether it did. A range already resolved is
// left as it is.
func (s *Spec) resolveCenter(ctx context.Context) (bool, error) {
	p, ok := s.Space["flood_level"]
	if !ok || p.Center == "" || p.Estimate != nil {
		return false, nil
	}
	data, err := s.LoadData(ctx)
	if err != nil {
		return false, err
	}
	var est float64
	switch p.Center {
	case CenterNoise:
		est = objective.IrreducibleLoss(s.Dataset.LabelNoise, data.Classes)
	case CenterUnflooded:
		cfg, err := s.Config(s.baselineValues())
		if err != nil {
			return false, err
		}
		cfg.FloodLevel, cfg.TestCurve = 0, false
		cfg.Epochs = p.CenterEpochs
		if cfg.Epochs == 0 {
			cfg.Epochs = defaultCenterEpochs
		}
		cfg.Seed = TrialSeed(s.Search.Seed, -1)
		res, err := objective.Train(ctx, data, cfg, nil)
		if err != nil {
			return false, fmt.Errorf("the unflooded run that estimates the flood level: %w", err)
		}
		est = res.TrainLoss
	}
	width := *p.High - *p.Low
	low := max(0, est-width/2)
	high := low + width
	p.Low, p.High, p.Estimate = &low, &high, &est
	s.Space["flood_level"] = p
	return true, nil
}
