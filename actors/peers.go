package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote"
)

// How Raft messages leave a node.
//
// A message goes from the goroutine that may send it (the node, or the log
// writer once the write it waited on is durable) straight to the peer's
// node actor, as a proto envelope. Going through the peer's replication
// actor first cost one more hand-over between goroutines on every message,
// on both halves of a write's round trip (a leader's append, a follower's
// acknowledgement). protoactor's Send never blocks the sender, even toward
// a peer that is down (research notes, delivery semantics), so the node
// risks nothing by sending itself. Only a snapshot goes through the
// replication actor, which streams it in acknowledged chunks.

// peerLink is how a node reaches one peer.
type peerLink struct {
	// node is the peer's node actor.
	node *actor.PID
	// replicator is this node's replication actor for the peer.
	replicator *actor.PID
}

// peerLinks are a node's links, by peer id.
type peerLinks map[uint64]peerLink

// send sends msgs to their peers, in order; a message to a peer without a
// link is dropped (Raft sends it again). Messages to one peer stay in
// order: protoactor delivers one sender's messages to one target in order.
func (ls peerLinks) send(ctx actor.Context, clusterID string, msgs []raftlogic.Message) {
	for _, m := range msgs {
		l, ok := ls[m.To]
		if !ok {
			continue
		}
		if m.Type == raftlogic.MsgSnap {
			ctx.Send(l.replicator, &outbound{msgs: []raftlogic.Message{m}})
			continue
		}
		ctx.Send(l.node, remote.NewEnvelope(clusterID, m))
	}
}
