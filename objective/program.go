package objective

import (
	"fmt"
	"time"

	G "gorgonia.org/gorgonia"
)

// program runs a Gorgonia graph on the calling goroutine: the graph's op
// nodes in topological order, each op's Do on the values of its operands.
//
// Gorgonia's tape machine runs every pass in a goroutine of its own while the
// caller waits on channels, locked to its OS thread. A pass of the model
// makes about ten BLAS calls through cgo, and with two trainings in one
// process the handoffs between the locked threads and the pass goroutines
// left about half of the second core idle (the process ran at 153% CPU): a
// step took 10.2 ms where two processes took 6.7-7.3 ms each. The graph here
// holds only leaves (inputs and constants) and ops that own their output
// buffers, so running the ops in order is all a pass needs, and the result
// is the tape machine's, bit for bit (TestProgramMatchesTapeMachine).
type program struct {
	steps  []instruction
	leaves []leaf
	values []G.Value // by slot: leaves first, then one per instruction
	slot   map[*G.Node]int
	// spent, when not nil, adds up the time of each instruction (see
	// StepBench.Breakdown).
	spent []time.Duration
}

type leaf struct {
	node *G.Node
	slot int
}

type instruction struct {
	node *G.Node
	op   G.Op
	args []int     // operand slots, in operand order
	in   []G.Value // the operand values of the current pass
	out  int       // result slot
}

// compile orders the graph's nodes and resolves every op's operands.
func compile(g *G.ExprGraph) (*program, error) {
	sorted, err := G.Sort(g) // sinks first
	if err != nil {
		return nil, fmt.Errorf("order the graph: %w", err)
	}
	p := &program{slot: make(map[*G.Node]int, len(sorted))}
	for i := len(sorted) - 1; i >= 0; i-- {
		n := sorted[i]
		var operands []*G.Node
		for it := g.From(n.ID()); it.Next(); {
			operands = append(operands, it.Node().(*G.Node))
		}
		s := len(p.values)
		p.values = append(p.values, nil)
		p.slot[n] = s
		if len(operands) == 0 {
			if n.Value() == nil {
				return nil, fmt.Errorf("graph node %v has neither operands nor a value", n)
			}
			p.leaves = append(p.leaves, leaf{node: n, slot: s})
			continue
		}
		op := n.Op()
		if op == nil {
			return nil, fmt.Errorf("graph node %v has operands but no op", n)
		}
		if a := op.Arity(); a >= 0 && a != len(operands) {
			return nil, fmt.Errorf("graph node %v: op %v takes %d operands, the node has %d", n, op, a, len(operands))
		}
		ins := instruction{node: n, op: op, out: s, in: make([]G.Value, len(operands))}
		for _, o := range operands {
			a, ok := p.slot[o]
			if !ok {
				return nil, fmt.Errorf("graph node %v: operand %v is not ordered before it", n, o)
			}
			ins.args = append(ins.args, a)
		}
		p.steps = append(p.steps, ins)
	}
	return p, nil
}

// run computes every node's value.
func (p *program) run() error {
	for _, l := range p.leaves {
		p.values[l.slot] = l.node.Value()
	}
	for i := range p.steps {
		s := &p.steps[i]
		for k, a := range s.args {
			s.in[k] = p.values[a]
		}
		var t0 time.Time
		if p.spent != nil {
			t0 = time.Now()
		}
		v, err := s.op.Do(s.in...)
		if p.spent != nil {
			p.spent[i] += time.Since(t0)
		}
		if err != nil {
			return fmt.Errorf("%v: %w", s.op, err)
		}
		p.values[s.out] = v
	}
	return nil
}

// value is n's value after the last run (nil before the first, and for a
// node not in the graph).
func (p *program) value(n *G.Node) G.Value {
	s, ok := p.slot[n]
	if !ok {
		return nil
	}
	return p.values[s]
}
