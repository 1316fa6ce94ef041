package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Running a node's mailboxes on reused goroutines.
//
// protoactor's default dispatcher starts a new goroutine every time an idle
// mailbox gets a message. A new goroutine starts with a small stack, and
// the node's work (stepping Raft, a Badger commit, proto encoding) grows
// it again by copying, message after message: runtime.newstack/copystack
// were 9.7% of a leader's CPU under 64 clients (CPU profile of a
// `raftkv serve` leader, 12 s). A pool keeps the goroutines, and with them
// their grown stacks, for the next mailbox run.

// mailboxThroughput is how many messages a mailbox handles before it yields
// the processor (runtime.Gosched), protoactor's default.
const mailboxThroughput = 300

// goroutinePool is a protoactor Dispatcher that runs each mailbox run on an
// idle goroutine of the pool, or on a new one (which then joins the pool)
// when none is idle. It never holds up a run: a mailbox blocked on a sync
// keeps its goroutine, and the next run gets another. The pool grows to the
// number of the node's mailboxes that ran at once, a handful per node, and a
// goroutine idle for poolIdleTimeout leaves it. The pool is never closed:
// the node's props, and with them the pool, serve every start of the node
// (an embedded DB restarts a stopped node from the same props), so idle
// goroutines of a node that stopped for good just time out.
type goroutinePool struct {
	work chan func()
	idle time.Duration // poolIdleTimeout; tests shorten it
}

// poolIdleTimeout is how long a goroutine of the pool waits for work before
// it exits: long against the gaps between a node's messages (a heartbeat
// every 100 ms), short enough that a closed DB's goroutines are gone soon.
const poolIdleTimeout = 5 * time.Second

func newGoroutinePool() *goroutinePool {
	return &goroutinePool{work: make(chan func()), idle: poolIdleTimeout}
}

var _ actor.Dispatcher = (*goroutinePool)(nil)

// Schedule hands fn to an idle goroutine, or starts one.
func (p *goroutinePool) Schedule(fn func()) {
	select {
	case p.work <- fn:
	default:
		go p.worker(fn)
	}
}

// Throughput implements actor.Dispatcher.
func (p *goroutinePool) Throughput() int { return mailboxThroughput }

// worker runs fn, then waits for more work until it has waited p.idle.
func (p *goroutinePool) worker(fn func()) {
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		fn()
		idle.Reset(p.idle)
		select {
		case fn = <-p.work:
		case <-idle.C:
			return
		}
	}
}
