package faults

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Network injects faults into the messages between nodes: cut links,
// random loss, duplication and delay. Install its Middleware on every node;
// it sees every message a node or its children send to another node. It is
// safe for concurrent use; changes take effect at once.
type Network struct {
	mu       sync.Mutex
	cut      map[[2]uint64]bool
	dropPct  int
	dupPct   int
	maxDelay time.Duration
	rng      *rand.Rand
	dropped  int
}

// NewNetwork returns a fault injector with every link healthy. seed makes
// its random choices repeatable.
func NewNetwork(seed uint64) *Network {
	return &Network{cut: map[[2]uint64]bool{}, rng: rand.New(rand.NewPCG(seed, 1))}
}

// Cut drops every message from node from to node to.
func (f *Network) Cut(from, to uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut[[2]uint64{from, to}] = true
}

// Isolate cuts node id off from every node in others, both ways.
func (f *Network) Isolate(id uint64, others ...uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, o := range others {
		if o != id {
			f.cut[[2]uint64{id, o}] = true
			f.cut[[2]uint64{o, id}] = true
		}
	}
}

// Partition splits the nodes into groups that cannot reach each other.
func (f *Network) Partition(groups ...[]uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, g := range groups {
		for j, h := range groups {
			if i == j {
				continue
			}
			for _, a := range g {
				for _, b := range h {
					f.cut[[2]uint64{a, b}] = true
				}
			}
		}
	}
}

// SetLoss makes every message between nodes lost with probability dropPct
// percent, duplicated with dupPct percent, and delayed by up to maxDelay
// (which also reorders messages).
func (f *Network) SetLoss(dropPct, dupPct int, maxDelay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dropPct, f.dupPct, f.maxDelay = dropPct, dupPct, maxDelay
}

// Heal restores every link and removes loss, duplication and delay.
func (f *Network) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]uint64]bool{}
	f.dropPct, f.dupPct, f.maxDelay = 0, 0, 0
}

// Dropped reports how many messages the faults have dropped so far.
func (f *Network) Dropped() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dropped
}

// Middleware returns the sender middleware to install on nodes.
func (f *Network) Middleware() actor.SenderMiddleware {
	return func(next actor.SenderFunc) actor.SenderFunc {
		return func(c actor.SenderContext, target *actor.PID, env *actor.MessageEnvelope) {
			from, ok1 := nodeOf(c.Self())
			to, ok2 := nodeOf(target)
			if !ok1 || !ok2 || from == to {
				next(c, target, env)
				return
			}
			deliveries, delays := f.decide(from, to)
			for i := 0; i < deliveries; i++ {
				if delays[i] == 0 {
					next(c, target, env)
					continue
				}
				// A late delivery must not touch the actor's context from
				// the timer goroutine; the root context carries the sender.
				root, msg, sender := c.ActorSystem().Root, env.Message, env.Sender
				time.AfterFunc(delays[i], func() { root.RequestWithCustomSender(target, msg, sender) })
			}
		}
	}
}

// decide says how many copies of a message from -> to arrive, and when.
func (f *Network) decide(from, to uint64) (int, [2]time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var delays [2]time.Duration
	if f.cut[[2]uint64{from, to}] || (f.dropPct > 0 && f.rng.IntN(100) < f.dropPct) {
		f.dropped++
		return 0, delays
	}
	n := 1
	if f.dupPct > 0 && f.rng.IntN(100) < f.dupPct {
		n = 2
	}
	for i := 0; i < n; i++ {
		if f.maxDelay > 0 {
			delays[i] = time.Duration(f.rng.Int64N(int64(f.maxDelay)))
		}
	}
	return n, delays
}

// nodeOf extracts the node id from a node actor's PID or its child's
// ("n3", "n3/apply"); actors.NodeName names them so, and the actors tests
// check that this package recognises those names.
func nodeOf(pid *actor.PID) (uint64, bool) {
	if pid == nil || !strings.HasPrefix(pid.Id, "n") {
		return 0, false
	}
	name, _, _ := strings.Cut(pid.Id[1:], "/")
	id, err := strconv.ParseUint(name, 10, 64)
	return id, err == nil
}
