package raftkv

import (
	"github.com/asynkron/protoactor-go/actor"
)

// replyBox is where one request's answer lands: a process in protoactor's
// registry, like the temporary process behind a RequestFuture, that puts
// the first message it gets on a channel. The router waits on that channel
// in the caller's own goroutine, together with the context and its other
// signals; a Future would need a goroutine per request to do the same
// (Result blocks), and a timer of its own.
type replyBox struct {
	sys *actor.ActorSystem
	pid *actor.PID
	ch  chan any
}

// newReplyBox registers a box; call close when done with it.
func newReplyBox(sys *actor.ActorSystem) *replyBox {
	b := &replyBox{sys: sys, ch: make(chan any, 1)}
	b.pid, _ = sys.ProcessRegistry.Add(b, "reply"+sys.ProcessRegistry.NextId())
	return b
}

// close removes the box from the registry: an answer that comes later goes
// to dead letters, as one to a timed-out future does.
func (b *replyBox) close() { b.sys.ProcessRegistry.Remove(b.pid) }

// SendUserMessage keeps the first answer; a dead letter (the target was
// gone) arrives as *actor.DeadLetterResponse.
func (b *replyBox) SendUserMessage(_ *actor.PID, message any) {
	_, msg, _ := actor.UnwrapEnvelope(message)
	select {
	case b.ch <- msg:
	default:
	}
}

// SendSystemMessage ignores system messages: nothing watches a box.
func (b *replyBox) SendSystemMessage(*actor.PID, any) {}

// Stop is called by the registry's owner when the system stops.
func (b *replyBox) Stop(*actor.PID) {}
