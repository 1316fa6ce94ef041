package actors

import "github.com/asynkron/protoactor-go/actor"

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
// number of the node's mailboxes that ran at once, a handful per node.
type goroutinePool struct {
	work chan func()
	quit chan struct{}
}

func newGoroutinePool() *goroutinePool {
	return &goroutinePool{work: make(chan func()), quit: make(chan struct{})}
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

// worker runs fn, then waits for more work until the pool is closed.
func (p *goroutinePool) worker(fn func()) {
	for {
		fn()
		select {
		case fn = <-p.work:
		case <-p.quit:
			return
		}
	}
}

// close lets idle goroutines exit; a run scheduled afterwards still runs,
// on a goroutine that exits when it ends. Called once, when the node has
// stopped for good.
func (p *goroutinePool) close() { close(p.quit) }
