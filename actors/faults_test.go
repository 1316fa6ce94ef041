package actors

import (
	"fmt"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/internal/faults"
)

// sendCmd asks a fault probe to send msg to to, through its middleware.
type sendCmd struct {
	to  *actor.PID
	msg string
}

// relay handles sendCmd: it sends, then tells the asker it has (the answer
// goes to a future, which is not a node, so faults never touch it).
func relay(ctx actor.Context) bool {
	c, ok := ctx.Message().(*sendCmd)
	if !ok {
		return false
	}
	ctx.Send(c.to, c.msg)
	ctx.Respond(true)
	return true
}

// These tests run internal/faults' Network between actors named as this
// package names nodes and their children (NodeName), so they also check that
// the fault injector recognises those names.

// faultNet is a few probes named like nodes (and one that is not), all
// sending through one faults.Network.
type faultNet struct {
	t     *testing.T
	sys   *actor.ActorSystem
	f     *faults.Network
	pid   map[string]*actor.PID
	rec   map[string]*recorder
	child *actor.PID // "n1/relay": a child of node 1
}

func newFaultNet(t *testing.T) *faultNet {
	sys := newSystem(t)
	n := &faultNet{t: t, sys: sys, f: faults.NewNetwork(42), pid: map[string]*actor.PID{}, rec: map[string]*recorder{}}
	mw := []actor.SenderMiddleware{n.f.Middleware()}
	for _, name := range []string{NodeName(1), NodeName(2), NodeName(3), "client"} {
		o := probeOpts{handle: relay, middleware: mw}
		if name == NodeName(1) {
			o.child = func() actor.Actor { return &probe{rec: newRecorder(), handle: relay} }
			o.childName = "relay"
		}
		var child *actor.PID
		n.pid[name], child, n.rec[name] = spawnProbe(t, sys, name, o)
		if child != nil {
			n.child = child
		}
	}
	return n
}

// send makes from send msg to the probe named to and returns once it has.
func (n *faultNet) send(from *actor.PID, to, msg string) {
	n.t.Helper()
	if _, err := n.sys.Root.RequestFuture(from, &sendCmd{to: n.pid[to], msg: msg}, waitTimeout).Result(); err != nil {
		n.t.Fatalf("%s could not send %q: %v", from.Id, msg, err)
	}
}

// arrives waits for msg at to.
func (n *faultNet) arrives(to, msg string) {
	n.t.Helper()
	expect(n.t, n.rec[to], func(s string) bool { return s == msg })
}

// dropped sends msg from -> to and checks the faults dropped it. (Drops
// are decided as the message is sent, so the count is up to date when send
// returns; a later marker shows nothing arrived.)
func (n *faultNet) dropped(from *actor.PID, to, msg string) {
	n.t.Helper()
	before := n.f.Dropped()
	n.send(from, to, msg)
	if got := n.f.Dropped(); got != before+1 {
		n.t.Fatalf("%s -> %s %q: Dropped went from %d to %d, want one more", from.Id, to, msg, before, got)
	}
}

// delivered sends msg from -> to and waits for it.
func (n *faultNet) delivered(from *actor.PID, to, msg string) {
	n.t.Helper()
	n.send(from, to, msg)
	n.arrives(to, msg)
}

// never checks that msg is not among what to received.
func (n *faultNet) never(to, msg string) {
	n.t.Helper()
	for _, m := range n.rec[to].snapshot() {
		if m == msg {
			n.t.Fatalf("%q reached %s", msg, to)
		}
	}
}

func TestNetworkFaultsCutIsOneWay(t *testing.T) {
	n := newFaultNet(t)
	n1, n2 := n.pid["n1"], n.pid["n2"]
	n.delivered(n1, "n2", "before")

	n.f.Cut(1, 2)
	n.dropped(n1, "n2", "cut")
	n.dropped(n.child, "n2", "cut from a child") // n1/relay is node 1 too
	n.delivered(n2, "n1", "the other way")
	n.delivered(n1, "n3", "another link")
	n.delivered(n1, "client", "not a node")

	n.f.Heal()
	n.delivered(n1, "n2", "healed") // a marker behind the dropped ones
	n.never("n2", "cut")
	n.never("n2", "cut from a child")
	if got := n.f.Dropped(); got != 2 {
		t.Fatalf("Dropped() = %d, want 2", got)
	}
}

func TestNetworkFaultsIsolateAndPartition(t *testing.T) {
	n := newFaultNet(t)
	n1, n2, n3 := n.pid["n1"], n.pid["n2"], n.pid["n3"]

	n.f.Isolate(1, 1, 2, 3) // its own id in the list is ignored
	n.dropped(n1, "n2", "iso 1->2")
	n.dropped(n2, "n1", "iso 2->1")
	n.dropped(n3, "n1", "iso 3->1")
	n.delivered(n2, "n3", "iso 2->3")
	n.delivered(n1, "client", "iso 1->client")
	n.f.Heal()
	n.delivered(n1, "n2", "healed 1->2")
	n.delivered(n2, "n1", "healed 2->1")

	n.f.Partition([]uint64{1}, []uint64{2, 3})
	n.dropped(n1, "n3", "part 1->3")
	n.dropped(n3, "n1", "part 3->1")
	n.dropped(n2, "n1", "part 2->1")
	n.delivered(n2, "n3", "part 2->3")
	n.delivered(n3, "n2", "part 3->2")
	n.f.Heal()
	n.delivered(n1, "n3", "healed 1->3")
	n.delivered(n3, "n1", "healed 3->1")

	for _, c := range [][2]string{{"n2", "iso 1->2"}, {"n1", "iso 2->1"}, {"n1", "iso 3->1"}, {"n3", "part 1->3"}, {"n1", "part 3->1"}, {"n1", "part 2->1"}} {
		n.never(c[0], c[1])
	}
}

func TestNetworkFaultsLossDuplicationDelay(t *testing.T) {
	n := newFaultNet(t)
	n1 := n.pid["n1"]

	n.f.SetLoss(100, 0, 0)
	n.dropped(n1, "n2", "lost")
	n.delivered(n1, "client", "clients are never lost")

	n.f.SetLoss(0, 100, 0)
	n.send(n1, "n2", "dup")
	n.arrives("n2", "dup")
	n.arrives("n2", "dup")

	n.f.SetLoss(0, 0, 20*time.Millisecond)
	for i := range 10 {
		n.send(n1, "n2", fmt.Sprintf("late %d", i))
	}
	for i := range 10 {
		n.arrives("n2", fmt.Sprintf("late %d", i))
	}

	n.f.SetLoss(50, 0, 0)
	before := n.f.Dropped()
	const sent = 100
	for i := range sent {
		n.send(n1, "n2", fmt.Sprintf("coin %d", i))
	}
	lost := n.f.Dropped() - before
	if lost == 0 || lost == sent {
		t.Fatalf("%d of %d lost at 50%% loss", lost, sent)
	}

	n.f.Heal()
	n.delivered(n1, "n2", "healed")
	arrived := 0
	for _, m := range n.rec["n2"].snapshot() {
		if s := m.(string); len(s) > 5 && s[:5] == "coin " {
			arrived++
		}
	}
	if arrived+lost != sent {
		t.Fatalf("%d arrived and %d were lost, of %d sent", arrived, lost, sent)
	}
	n.never("n2", "lost")
	// Everything else that reached n2 was taken by arrives: a third copy
	// of "dup" would be left over.
	if c := count[string](n.rec["n2"]); c != arrived {
		t.Fatalf("n2 holds %d messages not yet taken, want the %d coins", c, arrived)
	}
}
