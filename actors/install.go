package actors

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
)

// Installing a received snapshot without blocking the node.
//
// A Ready that carries a snapshot is handled in two halves. The first half
// (handleReady) does what does not depend on the install — the role
// change, a leader's early messages — and asks the apply actor to restore
// the state machine from the image file, and the node enters its installing
// state (lifecycle.go). It goes on taking input there: ticks, peer messages, client requests and status queries reach
// raftlogic (Step and Tick may be called between Ready and Advance), but no
// further Ready is taken until the install is done. The second half
// (finishReady, once apply answers) has the log writer record the snapshot
// after every batch before it, and once that is durable (snapshotWritten)
// the messages that acknowledge it go out and Advance is called. So the state machine
// holds the image before the log records it: a crash in between leaves the
// state machine ahead of the log, which openNodeStorage recovers from,
// never behind.
//
// Liveness is judged by progress, not by a deadline: the apply actor
// reports progress while it reads the image and writes the state, and an
// install that reports none for SnapshotIdleTimeout stops the node
// (fail-stop: its state machine is in an unknown condition). An image of
// any size may take as long as it needs.

// installSnapshot asks the apply actor to replace the state machine with
// the image in path; it answers with snapshotInstalled and reports
// installProgress on the way. Closing stop makes it give up while it still
// reads the image (the old state then stands).
type installSnapshot struct {
	gen  uint64
	path string
	stop <-chan struct{}
}

type snapshotInstalled struct {
	gen         uint64
	index, term uint64
	err         error
}

// installProgress tells the node that install gen is still moving.
type installProgress struct{ gen uint64 }

// installCheck asks the node whether install gen has stalled.
type installCheck struct{ gen uint64 }

// pendingInstall is the Ready whose snapshot is being installed, with what
// remains to do once it is.
type pendingInstall struct {
	gen            uint64
	rd             raftlogic.Ready
	late           []raftlogic.Message
	started, moved time.Time
	stop           chan struct{}
	timer          *time.Timer
	// installed: the state machine holds the snapshot, and the log's
	// record of it is being written (the idle check no longer applies).
	installed bool
}

// installProgressEvery throttles the apply actor's progress reports.
const installProgressEvery = 100 * time.Millisecond

// errInstallStopped ends a restore the node no longer wants (it is
// stopping).
var errInstallStopped = errors.New("actors: the node stopped the snapshot install")

// beginInstall hands the snapshot of rd to the apply actor and parks the
// rest of rd until it is installed: the node enters the installing state.
func (n *nodeActor) beginInstall(ctx actor.Context, rd raftlogic.Ready, late []raftlogic.Message) {
	n.installGen++
	now := time.Now()
	in := &pendingInstall{gen: n.installGen, rd: rd, late: late, started: now, moved: now, stop: make(chan struct{})}
	n.install = in
	n.behavior.BecomeStacked(n.installing)
	n.log.Info("installing snapshot", "index", rd.Snapshot.Meta.Index, "term", rd.Snapshot.Meta.Term)
	n.flushApply(ctx)
	ctx.Request(n.apply, &installSnapshot{gen: in.gen, path: string(rd.Snapshot.Data), stop: in.stop})
	n.armInstallCheck(ctx, n.cfg.SnapshotIdleTimeout)
}

func (n *nodeActor) armInstallCheck(ctx actor.Context, after time.Duration) {
	root, self, gen := ctx.ActorSystem().Root, ctx.Self(), n.install.gen
	n.install.timer = time.AfterFunc(after, func() { root.Send(self, &installCheck{gen: gen}) })
}

// installProgressed notes that the install is moving. A report of an
// earlier install (its generation) is ignored here and below.
func (n *nodeActor) installProgressed(msg *installProgress) {
	if n.install.gen == msg.gen {
		n.install.moved = time.Now()
	}
}

// checkInstall stops the node if install gen has made no progress for the
// idle timeout; otherwise it looks again when it next could have.
func (n *nodeActor) checkInstall(ctx actor.Context, gen uint64) {
	in := n.install
	if in.gen != gen || in.installed {
		return
	}
	idle := time.Since(in.moved)
	if idle < n.cfg.SnapshotIdleTimeout {
		n.armInstallCheck(ctx, n.cfg.SnapshotIdleTimeout-idle)
		return
	}
	n.fail(ctx, fmt.Errorf("install snapshot %d: no progress for %v (started %v ago)",
		in.rd.Snapshot.Meta.Index, idle.Round(time.Millisecond), time.Since(in.started).Round(time.Millisecond)))
}

// snapshotInstalled has the log record the snapshot the state machine now
// holds; the node stays parked until that is durable (snapshotWritten).
func (n *nodeActor) snapshotInstalled(ctx actor.Context, done *snapshotInstalled) {
	in := n.install
	if in.gen != done.gen || in.installed {
		return
	}
	meta := in.rd.Snapshot.Meta
	if done.err != nil {
		n.fail(ctx, fmt.Errorf("install snapshot %d: %w", meta.Index, done.err))
		return
	}
	if done.index != meta.Index || done.term != meta.Term {
		n.fail(ctx, fmt.Errorf("install snapshot: the image covers index %d term %d, Raft's snapshot is index %d term %d", done.index, done.term, meta.Index, meta.Term))
		return
	}
	in.timer.Stop()
	in.installed = true
	n.log.Info("snapshot installed", "index", meta.Index, "took", time.Since(in.started).Round(time.Millisecond))
	// Restore commits: the image is durable.
	n.applied = max(n.applied, done.index)
	n.durable = max(n.durable, done.index)
	n.releaseImage(ctx, string(in.rd.Snapshot.Data))
	// The image brought the member table as of its index: members added
	// since the node last knew may be reachable only now.
	if err := n.loadBook(in.rd.Entries); err != nil {
		n.fail(ctx, fmt.Errorf("install snapshot %d: reading members: %w", meta.Index, err))
		return
	}
	n.syncReplicators(ctx, n.raft.Status().Conf)
	n.finishReady(ctx, in.rd, in.late)
}

// snapshotWritten completes the Ready parked by beginInstall once the log
// records its snapshot, and the node is back to running.
func (n *nodeActor) snapshotWritten(ctx actor.Context) {
	in := n.install
	if in == nil || !in.installed {
		return
	}
	n.install = nil
	n.behavior.UnbecomeStacked()
	// The installing state held back the flushes asked for meanwhile.
	n.flushPending = false
	n.advance(ctx, in.rd)
}

// stopInstall makes an install in progress, if any, give up (the node is
// stopping).
func (n *nodeActor) stopInstall() {
	if in := n.install; in != nil {
		in.timer.Stop()
		close(in.stop)
		n.install = nil
	}
}

// restoreImage is the apply actor's side of an install: it restores the
// state machine from the image file, reporting progress to the node.
func (a *applyActor) restoreImage(ctx actor.Context, msg *installSnapshot) (index, term uint64, err error) {
	f, err := os.Open(msg.path)
	if err != nil {
		return 0, 0, fmt.Errorf("open snapshot image: %w", err)
	}
	defer f.Close()
	// A restore stages the whole image before it deletes the old state, so
	// it may need about twice the image until Badger compacts.
	if info, err := f.Stat(); err == nil {
		if err := persist.CheckSpace(a.stateDir, a.diskReserve, 2*info.Size()); err != nil {
			return 0, 0, fmt.Errorf("restore snapshot image: %w", err)
		}
	}
	parent, last := ctx.Parent(), time.Now()
	progress := func() {
		if now := time.Now(); now.Sub(last) >= installProgressEvery {
			last = now
			ctx.Send(parent, &installProgress{gen: msg.gen})
		}
	}
	var r io.Reader = &stoppableReader{r: f, stop: msg.stop}
	if a.hooks != nil && a.hooks.restoreReader != nil {
		r = a.hooks.restoreReader(r)
	}
	r = &progressReader{r: r, progress: progress}
	return a.sm.Restore(r, kvstate.WithRestoreProgress(progress))
}

// stoppableReader fails its reads once stop is closed.
type stoppableReader struct {
	r    io.Reader
	stop <-chan struct{}
}

func (s *stoppableReader) Read(p []byte) (int, error) {
	select {
	case <-s.stop:
		return 0, errInstallStopped
	default:
		return s.r.Read(p)
	}
}

// progressReader calls progress after every read that returned data.
type progressReader struct {
	r        io.Reader
	progress func()
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.progress()
	}
	return n, err
}
