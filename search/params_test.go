package search_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/c-bata/goptuna"
	"github.com/floodtune/floodtune/search"
	"github.com/floodtune/floodtune/storage"
)

func dist(t *testing.T, d any) json.RawMessage {
	t.Helper()
	b, err := goptuna.DistributionToJSON(d)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeParamsReadsTheExternalValues(t *testing.T) {
	t.Parallel()
	tr := &storage.Trial{Number: 3, Params: map[string]storage.Param{
		"flood_level": {Value: 0.25, Distribution: dist(t, goptuna.UniformDistribution{Low: 0, High: 2})},
		"epochs":      {Value: 7, Distribution: dist(t, goptuna.IntUniformDistribution{Low: 1, High: 10})},
		"optimizer":   {Value: 1, Distribution: dist(t, goptuna.CategoricalDistribution{Choices: []string{"sgd", "adam"}})},
	}}
	got, err := search.DecodeParams(tr)
	if err != nil {
		t.Fatal(err)
	}
	if got["flood_level"] != 0.25 || got["epochs"] != 7 || got["optimizer"] != "adam" {
		t.Errorf("DecodeParams = %v", got)
	}
	tr.Params["optimizer"] = storage.Param{Value: 5, Distribution: tr.Params["optimizer"].Distribution}
	if _, err := search.DecodeParams(tr); err == nil || !strings.Contains(err.Error(), "outside the 2 choices") {
		t.Errorf("a choice index out of range: err = %v", err)
	}
}
