package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/floodtune/floodtune/internal/pgtest"
	"github.com/floodtune/floodtune/storage"
)

func TestAWorkerThatLosesItsNetwork(t *testing.T) {
	t.Parallel()
	const budget = 6
	hosts := newHosts(t, 2)
	e := newEnvAt(t, pgtest.Dedicated(t, hosts[0].addr, hosts[1].addr), budget)
	a, b := e.startOn(hosts[0], "worker A"), e.startOn(hosts[1], "worker B")
	// A worker is named host-pid-random/slot, and ip netns exec runs floodtune in
	// its own process.
	ofA := fmt.Sprintf("-%d-", a.cmd.Process.Pid)
	var victim *storage.Trial
	until(t, 60*time.Second, "worker A runs a trial", func() bool {
		for _, tr := range e.trials() {
			if tr.State == storage.Running && len(tr.Params) > 0 && strings.Contains(tr.Worker, ofA) {
				victim = tr
				return true
			}
		}
		return false
	})
	hosts[0].setLink(t, "down")
	cut := time.Now()
	until(t, 30*time.Second, "the cut-off worker's trial is failed and retried", func() bool { return e.retried(victim.ID) })
	reaped := time.Since(cut)
	t.Logf("trial %d reaped and retried %v after its worker's link was cut (lease 3s)", victim.Number, reaped.Round(10*time.Millisecond))
	if reaped > 3*time.Second+2*time.Second {
		t.Errorf("reaped after %v, want within the lease (3s) plus one reaper interval (1s) and a poll", reaped)
	}
	atReap, err := e.st.Trial(context.Background(), victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Worker A's heartbeats, and the report of the epoch its training waits
	// on, queue behind the cut meanwhile.
	time.Sleep(3 * time.Second)
	hosts[0].setLink(t, "up")
	restored := time.Now()
	if err := a.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("worker A after its link came back: %v", err)
	}
	t.Logf("worker A exited %v after its link came back", time.Since(restored).Round(10*time.Millisecond))
	if err := b.wait(t, 3*time.Minute); err != nil {
		t.Fatalf("worker B: %v", err)
	}
	t.Logf("worker A said:\n%s", a.out.String())
	if !strings.Contains(a.out.String(), "lost the lease") && !strings.Contains(a.out.String(), "no longer running under this worker") {
		t.Errorf("worker A did not say it lost the lease:\n%s", a.out.String())
	}
	after, err := e.st.Trial(context.Background(), victim.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.State != storage.Fail || !strings.HasPrefix(after.SystemAttrs[storage.FailReasonAttr], "lease expired") {
		t.Errorf("the cut-off trial is %s (%q), want failed by the reaper", after.State, after.SystemAttrs[storage.FailReasonAttr])
	}
	if after.HasValue() || len(after.Intermediate) != len(atReap.Intermediate) {
		t.Errorf("the cut-off trial has value %v and %d intermediate values, %d when it was reaped: a late write of worker A stood",
			after.Value, len(after.Intermediate), len(atReap.Intermediate))
	}
	retry, err := e.st.Trial(context.Background(), after.RetriedBy)
	if err != nil {
		t.Fatalf("the retry of trial %d: %v", victim.Number, err)
	}
	if retry.Params["flood_level"].Value != victim.Params["flood_level"].Value || retry.State != storage.Complete {
		t.Errorf("the retry of trial %d is %s with flood level %v, want complete with %v", victim.Number, retry.State,
			retry.Params["flood_level"].Value, victim.Params["flood_level"].Value)
	}
	e.checkStudy(budget)
}

// startOn starts a worker process of study s on h, where it reaches the
// database through h's link.
func (e *env) startOn(h *netHost, name string) *worker {
	e.t.Helper()
	u, err := url.Parse(e.url)
	if err != nil {
		e.t.Fatal(err)
	}
	u.Host = net.JoinHostPort(h.addr.Addr().String(), u.Port())
	return e.launch(exec.Command("ip", "netns", "exec", h.ns, binary), u.String(), "s", name)
}

// netHost is a machine of its own as far as the network goes: a network
// namespace joined to this one by a veth pair, with no route but to the
// host side of that link.
type netHost struct {
	ns   string       // the namespace
	link string       // the host side of the veth pair
	addr netip.Prefix // the host side's address; the namespace side has the next one
}

// nsPrefix starts the names of the namespaces and of the host sides of their
// links; the test binary's pid follows, so that a later run can tell what a
// dead binary left behind.
const nsPrefix = "ftn"

// blackholeMetric ranks the blackhole route of a host's network below the
// route through its link: while the link is down, what this machine sends
// to the host is dropped instead of leaving by the default route.
const blackholeMetric = "4077"

// newHosts makes n hosts, each on a /30 of its own in 10.77.0.0/16, and
// removes them when the test ends. Without root or ip (iproute2), the test
// is skipped, or fails when CI is set.
func newHosts(t *testing.T, n int) []*netHost {
	t.Helper()
	if os.Geteuid() != 0 {
		pgtest.Unavailable(t, "network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		pgtest.Unavailable(t, "network namespaces need the ip command (Debian: apt-get install iproute2)")
	}
	removeStaleHosts()
	nets := freeNets(t, n)
	var hosts []*netHost
	for i, p := range nets {
		h := &netHost{
			ns:   fmt.Sprintf("%s%d-%d", nsPrefix, os.Getpid(), i+1),
			link: fmt.Sprintf("%s%dh%d", nsPrefix, os.Getpid(), i+1),
			addr: netip.PrefixFrom(p.Addr().Next(), p.Bits()),
		}
		if err := ip("netns", "add", h.ns); err != nil {
			pgtest.Unavailable(t, "cannot make a network namespace: "+err.Error())
		}
		t.Cleanup(func() {
			// Deleting the namespace deletes the veth pair too.
			if err := ip("netns", "del", h.ns); err != nil {
				t.Errorf("remove host %s: %v", h.ns, err)
			}
		})
		peer := netip.PrefixFrom(h.addr.Addr().Next(), p.Bits()).String()
		for _, args := range [][]string{
			{"link", "add", h.link, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
			{"addr", "add", h.addr.String(), "dev", h.link},
			{"link", "set", h.link, "up"},
			{"-n", h.ns, "addr", "add", peer, "dev", "eth0"},
			{"-n", h.ns, "link", "set", "eth0", "up"},
			{"-n", h.ns, "link", "set", "lo", "up"},
			// Replace takes over a route that a dead run left.
			{"route", "replace", "blackhole", p.String(), "metric", blackholeMetric},
		} {
			if err := ip(args...); err != nil {
				t.Fatalf("make host %s: %v", h.ns, err)
			}
		}
		t.Cleanup(func() {
			if err := ip("route", "del", "blackhole", p.String(), "metric", blackholeMetric); err != nil {
				t.Errorf("remove host %s: %v", h.ns, err)
			}
		})
		hosts = append(hosts, h)
	}
	return hosts
}

// setLink sets the host side of h's link "up" or "down".
func (h *netHost) setLink(t *testing.T, state string) {
	t.Helper()
	if err := ip("link", "set", h.link, state); err != nil {
		t.Fatal(err)
	}
}

// freeNets returns n /30 networks of 10.77.0.0/16 that no address of this
// machine is in.
func freeNets(t *testing.T, n int) []netip.Prefix {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var used []netip.Prefix
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			used = append(used, p)
		}
	}
	var free []netip.Prefix
	for i := 1; i < 255 && len(free) < n; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(i), 0}), 30)
		if !slices.ContainsFunc(used, p.Overlaps) {
			free = append(free, p)
		}
	}
	if len(free) < n {
		t.Fatalf("fewer than %d free /30 networks in 10.77.0.0/16", n)
	}
	return free
}

// removeStaleHosts removes the namespaces, and with them their links, of
// test binaries that died before their cleanup ran.
func removeStaleHosts() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(line, " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		pid, _, _ := strings.Cut(rest, "-")
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || n == os.Getpid() {
			continue
		}
		if err := syscall.Kill(n, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // its binary still runs
		}
		_ = ip("netns", "del", name)
	}
}

// ip runs the ip command.
func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
