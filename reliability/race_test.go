package reliability

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floodtune/floodtune/storage"
)

// TestTheReaperRacingACompletionLeavesOneOutcome freezes a worker in the
// last epochs of its trial and resumes it around the moment its lease
// expires, so that its heartbeat and its result race the other worker's
// reaper. Whichever wins, the trial has one outcome: completed by its
// worker, and then never reaped afterwards, or failed by the reaper and
// retried, and then its worker's result refused.
func TestTheReaperRacingACompletionLeavesOneOutcome(t *testing.T) {
	t.Parallel()
	const (
		budget = 10
		epochs = 12 // of spec
		lease  = 3 * time.Second
		rounds = 6
	)
	e := newEnv(t, budget)
	// B works on a study of its own: its reaper serves the whole database,
	// and A alone spends the budget of s, one raced trial per round.
	e.create("other", fmt.Sprintf(spec, 1000))
	a := e.start("worker A")
	b := e.startStudy("other", "worker B")

	// Resume the frozen worker at these offsets from the expiry of its
	// lease: the reaper ticks once a second, so the earlier ones mostly
	// let the worker win and the later ones the reaper.
	offsets := []time.Duration{-300 * time.Millisecond, 0, 300 * time.Millisecond, 600 * time.Millisecond,
		900 * time.Millisecond, 1200 * time.Millisecond}
	completed, reaped := 0, 0
	var won []*storage.Trial // completed by A in a race
	for round := 0; round < rounds; round++ {
		// A first run (a retry may not be retried again) in its last two
		// epochs: little training is left when A resumes, so its result
		// follows at once.
		var victim *storage.Trial
		deadline := time.Now().Add(60 * time.Second)
		for victim == nil && time.Now().Before(deadline) {
			for _, tr := range e.trials() {
				if tr.State == storage.Running && tr.Attempt == 0 && len(tr.Intermediate) >= epochs-2 {
					victim = tr
				}
			}
			if victim == nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
		if victim == nil {
			break // the budget is spent before every round ran
		}
		if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		// A heartbeat already on its way lands before the expiry is read.
		time.Sleep(100 * time.Millisecond)
		frozen, err := e.st.Trial(context.Background(), victim.ID)
		if err != nil {
			t.Fatal(err)
		}
		offset := offsets[round%len(offsets)]
		time.Sleep(time.Until(frozen.HeartbeatAt.Add(lease + offset)))
		if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		var final *storage.Trial
		until(t, 30*time.Second, "the raced trial reaches a final state", func() bool {
			final, err = e.st.Trial(context.Background(), victim.ID)
			return err == nil && final.State.Final()
		})
		switch final.State {
		case storage.Complete:
			won = append(won, final)
			if !final.HasValue() || len(final.Intermediate) != epochs {
				t.Errorf("completed trial %d has value %v and %d epochs, want a value and %d", final.Number,
					final.Value, len(final.Intermediate), epochs)
			}
			completed++
		case storage.Fail:
			if reason := final.SystemAttrs[storage.FailReasonAttr]; !strings.HasPrefix(reason, "lease expired") || final.RetriedBy == 0 {
				t.Errorf("trial %d failed with %q (retried by %d), want reaped and retried", final.Number, reason, final.RetriedBy)
				break
			}
			retry, err := e.st.Trial(context.Background(), final.RetriedBy)
			if err != nil {
				t.Fatal(err)
			}
			if retry.Params["flood_level"].Value != final.Params["flood_level"].Value {
				t.Errorf("the retry of trial %d has flood level %v, want %v", final.Number,
					retry.Params["flood_level"].Value, final.Params["flood_level"].Value)
			}
			reaped++
		default:
			t.Errorf("trial %d ended %s", final.Number, final.State)
		}
		t.Logf("round %d: resumed %+v from the lease's expiry: trial %d %s", round+1, offset, final.Number, final.State)
	}
	if err := a.wait(t, 4*time.Minute); err != nil {
		t.Errorf("worker A: %v", err)
	}
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.wait(t, time.Minute); err != nil {
		t.Errorf("worker B after SIGTERM: %v", err)
	}
	e.checkStudy(budget)
	// The reaper ticked many times since: a completed trial stays so.
	for _, tr := range won {
		later, err := e.st.Trial(context.Background(), tr.ID)
		if err != nil {
			t.Fatal(err)
		}
		if later.State != storage.Complete || later.RetriedBy != 0 || later.Value != tr.Value {
			t.Errorf("trial %d completed with %v, then became %s (value %v, retried by %d)", tr.Number,
				tr.Value, later.State, later.Value, later.RetriedBy)
		}
	}
	for _, tr := range e.trials() {
		if tr.State == storage.Complete && (tr.RetriedBy != 0 || !tr.HasValue()) {
			t.Errorf("trial %d is complete but retried by %d, value %v", tr.Number, tr.RetriedBy, tr.Value)
		}
		if tr.State == storage.Fail && !strings.HasPrefix(tr.SystemAttrs[storage.FailReasonAttr], "lease expired") {
			t.Errorf("trial %d failed with %q", tr.Number, tr.SystemAttrs[storage.FailReasonAttr])
		}
	}
	if completed+reaped < 3 {
		t.Fatalf("only %d rounds ran: the race was hardly exercised", completed+reaped)
	}
	t.Logf("%d rounds: %d completed by their worker and never reaped after, %d reaped and retried with the late result refused",
		completed+reaped, completed, reaped)
	if reaped > 0 && !strings.Contains(a.out.String(), "lost the lease") && !strings.Contains(a.out.String(), "no longer running under this worker") {
		t.Errorf("worker A did not say that it lost a lease:\n%s", a.out.String())
	}
}
