package objective

import (
	"math"
	"runtime"
	"strings"
	"testing"

	"github.com/floodtune/floodtune/flood"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// floats copies a value's float32s.
func floats(t *testing.T, v G.Value) []float32 {
	t.Helper()
	if v == nil {
		t.Fatal("no value")
	}
	return append([]float32(nil), v.Data().([]float32)...)
}

// A pass of the program computes what Gorgonia's tape machine computes on
// the same graph, bit for bit: the per-sample losses, the logits, the
// flooded objective and every gradient, for each flooding method, on a batch
// that spans both sides of the flood level.
func TestProgramMatchesTapeMachine(t *testing.T) {
	d := gaussData(t, 0.1)
	idx := make([]int, 32)
	for i := range idx {
		idx[i] = 3 * i
	}
	for _, tc := range []struct {
		method flood.Method
		level  float64
		train  bool
	}{
		{flood.None, 0, true},
		{flood.Batch, 0.6, true},
		{flood.Batch, 5, true}, // above the loss: every step ascends
		{flood.Individual, 0.6, true},
		{flood.None, 0, false},
	} {
		m := NewModel(d.Features, []int{16, 8}, d.Classes, newRand(7, streamInit))
		n, err := m.newNet(len(idx), tc.train, tc.method, tc.level)
		if err != nil {
			t.Fatal(err)
		}
		n.load(&d.Train, d.Features, idx)
		if err := n.run(); err != nil {
			t.Fatal(err)
		}
		nodes := append(G.Nodes{n.losses, n.logits}, n.grads...)
		ours := make([][]float32, len(nodes))
		for i, nd := range nodes {
			ours[i] = floats(t, n.prog.value(nd))
		}
		var ourJ float64
		if tc.train {
			ourJ = n.stats.LastLoss()
		}
		if err := G.NewTapeMachine(n.g).RunAll(); err != nil {
			t.Fatal(err)
		}
		for i, nd := range nodes {
			want := floats(t, nd.Value())
			if len(want) != len(ours[i]) {
				t.Fatalf("%s b=%v: %v: %d values, the tape machine's %d", tc.method, tc.level, nd, len(ours[i]), len(want))
			}
			for k := range want {
				if math.Float32bits(want[k]) != math.Float32bits(ours[i][k]) {
					t.Fatalf("%s b=%v: %v[%d] = %v, the tape machine's %v", tc.method, tc.level, nd, k, ours[i][k], want[k])
				}
			}
		}
		if tc.train && n.stats.LastLoss() != ourJ {
			t.Fatalf("%s b=%v: J = %v, the tape machine's %v", tc.method, tc.level, ourJ, n.stats.LastLoss())
		}
		if tc.train && len(n.grads) != 2*len(m.W) {
			t.Fatalf("%d gradients, want %d", len(n.grads), 2*len(m.W))
		}
	}
}

func TestCompileRejectsAnInputWithoutAValue(t *testing.T) {
	g := G.NewGraph()
	x := G.NewMatrix(g, tensor.Float32, G.WithShape(2, 3), G.WithName("x"))
	w := G.NewMatrix(g, tensor.Float32, G.WithShape(3, 3), G.WithName("w"), G.WithValue(tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(3, 3))))
	b := G.NewVector(g, tensor.Float32, G.WithShape(3), G.WithName("b"), G.WithValue(tensor.New(tensor.Of(tensor.Float32), tensor.WithShape(3))))
	if _, err := G.ApplyOp(newLinearOp(true, false), x, w, b); err != nil {
		t.Fatal(err)
	}
	_, err := compile(g)
	if err == nil || !strings.Contains(err.Error(), "neither operands nor a value") {
		t.Fatalf("compile of a graph whose input has no value: %v", err)
	}
}

func TestReserveWorkers(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(before)
	want := func(extra int) int {
		if !cgoBLAS {
			return before
		}
		return before + extra
	}
	a := ReserveWorkers(2)
	if got := runtime.GOMAXPROCS(0); got != want(2) {
		t.Fatalf("after reserving 2: GOMAXPROCS %d, want %d", got, want(2))
	}
	b := ReserveWorkers(3)
	if got := runtime.GOMAXPROCS(0); got != want(5) {
		t.Fatalf("after reserving 2 and 3: GOMAXPROCS %d, want %d", got, want(5))
	}
	a()
	a() // a second call releases nothing more
	if got := runtime.GOMAXPROCS(0); got != want(3) {
		t.Fatalf("after releasing 2 of 5: GOMAXPROCS %d, want %d", got, want(3))
	}
	b()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("after releasing all: GOMAXPROCS %d, want %d", got, before)
	}
	ReserveWorkers(0)()
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("reserving 0: GOMAXPROCS %d, want %d", got, before)
	}
}
