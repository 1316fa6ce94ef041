package actors

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// The node actor's lifecycle. A node is in one of four states, each a
// receive function (protoactor's Behavior); what a node does with a message
// is decided by its state's switch below, and nowhere else.
//
//	starting ──Started, storage opened──▶ running ◀──install done──┐
//	    │                                   │ │                     │
//	    │ storage failed                    │ └─Ready with snapshot─▶ installing
//	    ▼                                   ▼                        │
//	 stopping ◀───── Stopping, Restarting, fail (storage error, ─────┘
//	                 a child failing for good, a stalled install)
//
//   - starting: before storage is open. Only Started arrives here (protoactor
//     delivers it first); it opens storage and rebuilds Raft.
//   - running: Raft is live. Every input goes to raftlogic; its Ready is
//     handled once per burst (flushReady).
//   - installing: running, with one Ready parked while the apply actor
//     restores a received snapshot (install.go). Input still reaches
//     raftlogic, but no further Ready is taken and the log is not compacted
//     (it is about to be replaced) until the install answers and the log
//     writer has recorded the snapshot.
//   - stopping: the node is going away, asked to or on its own (fail). It
//     takes no input to Raft, refuses requests with SHUTTING_DOWN and
//     snapshot chunks with a rejection, deletes images handed to it, and
//     ignores its children's reports; when protoactor delivers Stopped (all
//     children gone) it closes storage and calls OnStopped. There is no way
//     back: a node restarts as a new incarnation, from storage.

// starting is the node's first state.
func (n *nodeActor) starting(ctx actor.Context) {
	switch ctx.Message().(type) {
	case *actor.Started:
		if err := n.start(ctx); err != nil {
			n.fail(ctx, err)
			return
		}
		n.behavior.Become(n.running)
	default:
		// Nothing else comes before Started; answer as a node not running.
		n.stopping(ctx)
	}
}

// running is the state of a live node.
func (n *nodeActor) running(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Stopping, *actor.Restarting:
		n.stopTransfer(ctx)
		n.enterStopping()
	case *actor.Terminated:
		n.childTerminated(ctx, msg)
	case *failStop:
		n.fail(ctx, msg.err)

	// Input to Raft.
	case *tick:
		n.raft.Tick()
		n.transferTicked(ctx)
		n.scheduleFlush(ctx)
	case *flushReady:
		n.flushPending = false
		n.handleReady(ctx)
	case *raftpb.RaftEnvelope:
		n.step(ctx, msg)
	case *snapshotDone:
		n.raft.ReportSnapshot(msg.peer, msg.ok)
		n.scheduleFlush(ctx)
	case *raftpb.SnapshotChunk:
		n.receiveChunk(ctx, msg)
	case *imageReceived:
		n.imageReceived(ctx, msg)
	case *logWritten:
		n.logWritten(ctx, msg)

	// Requests.
	case *raftpb.ProposeRequest:
		n.propose(ctx, msg)
	case *raftpb.GetRequest:
		n.get(ctx, msg)
	case *raftpb.StatusRequest:
		n.status(ctx, msg)
	case *raftpb.TransferRequest:
		n.transfer(ctx, msg)
	case *raftpb.ConfChangeRequest:
		n.changeMembers(ctx, msg)
	case *raftpb.MembersRequest:
		n.listMembers(ctx, msg)

	// Reports from children.
	case *appliedUpTo:
		n.appliedUpTo(ctx, msg)
		n.maybeCompact(ctx)
	case *applyStarted:
		n.applyStarted(ctx, msg)
	case *installProgress, *installCheck, *snapshotInstalled:
		// Of an install that has ended.
	case *actor.DeadLetterResponse:
		// A peer or client went away; Raft retries on its own.
	}
}

// installing is running while the apply actor installs the snapshot of
// the Ready in n.install (see install.go).
func (n *nodeActor) installing(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *flushReady:
		// raftlogic hands out no Ready before the parked one is advanced.
		// flushPending stays set, so no more flushes are asked for until
		// the install is done and the next Ready is scheduled.
	case *appliedUpTo:
		n.appliedUpTo(ctx, msg)
	case *applyStarted:
		n.applyStarted(ctx, msg)
	case *installProgress:
		n.installProgressed(msg)
	case *installCheck:
		n.checkInstall(ctx, msg.gen)
	case *snapshotInstalled:
		n.snapshotInstalled(ctx, msg)
	default:
		n.running(ctx)
	}
}

// stopping is the last state of a node (see the top of this file).
func (n *nodeActor) stopping(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Stopped:
		n.held.release(n.log)
		n.storage = nil
		if n.cfg.OnStopped != nil {
			n.cfg.OnStopped(n.failure)
		}
	case *raftpb.ProposeRequest, *raftpb.ConfChangeRequest:
		if !n.unanswerable(ctx, msg) {
			ctx.Respond(&raftpb.ProposeResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: errNotRunning})
		}
	case *raftpb.GetRequest:
		if !n.unanswerable(ctx, msg) {
			ctx.Respond(&raftpb.GetResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: errNotRunning})
		}
	case *raftpb.StatusRequest:
		ctx.Respond(&raftpb.StatusResponse{Id: n.cfg.ID, ErrorCode: raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN})
	case *raftpb.MembersRequest:
		ctx.Respond(&raftpb.MembersResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN, Message: errNotRunning})
	case *raftpb.TransferRequest:
		ctx.Respond(&raftpb.TransferResponse{ErrorCode: raftpb.ErrorCode_ERROR_CODE_SHUTTING_DOWN})
	case *raftpb.SnapshotChunk:
		if ctx.Sender() != nil {
			n.log.Debug("refused a snapshot chunk", "from", msg.GetFrom(), "reason", errNotRunning)
			ctx.Respond(chunkAck(msg, true, 0))
		}
	case *imageReceived:
		// The receiver is stopping too; nobody will install it.
		removeFile(n.log, msg.path)
	}
	// Everything else (Raft input, timers, children's reports and failures,
	// Stopping after fail) is dropped: the node no longer runs Raft.
}

// errNotRunning is what a stopping node tells a request it refuses.
const errNotRunning = "node is not running"

// enterStopping makes the node stop taking input. The children are stopped
// next, and storage is closed only once they are gone (Stopped, or the
// next incarnation's start), since apply may still be writing.
func (n *nodeActor) enterStopping() {
	n.stopInstall()
	n.raft = nil
	n.behavior.Become(n.stopping)
}

// fail stops the node: a storage error means the node can no longer promise
// durability, and serving from a state it cannot trust is worse than being
// down (fail-stop). The rest of the cluster carries on without it. Only a
// starting, running or installing node fails; a stopping one has nothing
// left to fail.
func (n *nodeActor) fail(ctx actor.Context, err error) {
	n.failure = err
	n.log.Error("node stopping after a fatal error", "err", err)
	n.stopTransfer(ctx)
	n.enterStopping()
	ctx.Stop(ctx.Self())
}
