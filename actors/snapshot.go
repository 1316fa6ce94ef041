package actors

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/persist"
	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// Receiving a snapshot. A follower's node actor checks each chunk's
// envelope (cluster, addressee, a sender that is a member, a term not older
// than its own) and forwards it to its snapshot-recv child, which appends
// it to a file in the node's snapshot directory, so memory does not grow
// with the image. When the last chunk is in, the child syncs the file,
// verifies the whole image (kvstate.VerifySnapshot: structure, checksum,
// and the index and term the chunks announced) and only then acknowledges
// it and hands it to the node. The node steps it into raftlogic as a
// MsgSnap whose Snapshot.Data is the image file's path (not the image): in
// this package, a raftlogic.Snapshot's Data is always such a path, of a
// synced, verified file the node owns, and raftlogic only carries it. The
// apply actor restores the state machine from that file (see install.go);
// the file is deleted once installed, or as soon as Raft turns it down.
//
// One transfer at a time, and one image at a time:
//
//   - While an image is handed on (until it is installed or turned down),
//     every chunk is refused: the sender retries later.
//   - A first chunk (offset 0) starts a transfer if none is in progress. If
//     one is, the first chunk replaces it when it comes from the same
//     sender (which started over) or carries a higher term (a newer
//     leader); otherwise it is refused, and the transfer in progress goes
//     on. A first chunk of the very transfer in progress (same sender,
//     term, index and snapshot term) is a duplicate or a resend of the same
//     image: it is answered with the offset already received, and the
//     sender resumes from there.
//   - A later chunk must belong to the transfer in progress and start where
//     it ends; a repeat of a chunk already written is answered with the
//     offset received so far, a gap ends the transfer.
//   - A transfer no chunk has extended for SnapshotIdleTimeout is dropped
//     and its file deleted.
//
// The snapshot directory is cleared when the node starts: neither a
// partial transfer nor an image not yet installed is worth keeping across a
// restart (Raft asks the leader again).

// snapshotDirName is the node's snapshot directory, inside its data
// directory: images being sent (send-<peer>.img) and received (recv-*.img).
const snapshotDirName = "snapshots"

// prepareSnapshotDir empties (or creates) the snapshot directory under
// dataDir and returns its path.
func prepareSnapshotDir(dataDir string) (string, error) {
	dir := filepath.Join(dataDir, snapshotDirName)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("actors: clear snapshot directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("actors: create snapshot directory: %w", err)
	}
	return dir, nil
}

// imageReceived tells the node that its receiver holds a complete, synced
// and verified image in path.
type imageReceived struct {
	path     string
	from     uint64
	raftTerm uint64
	meta     raftlogic.SnapshotMeta
}

// imageReleased tells the receiver that the image it handed on is installed
// or turned down, so it may take a new transfer.
type imageReleased struct{}

// receiveIdle asks the receiver whether transfer gen has gone idle.
type receiveIdle struct{ gen uint64 }

// receiveChunk checks a chunk's envelope and passes it to the receiver,
// which answers its sender.
func (n *nodeActor) receiveChunk(ctx actor.Context, c *raftpb.SnapshotChunk) {
	if ctx.Sender() == nil {
		return // an acknowledgement would reach nobody; the sender cannot go on
	}
	var why string
	switch {
	case c.GetClusterId() != n.cfg.ClusterID:
		why = "chunk for cluster " + c.GetClusterId()
	case c.GetTo() != n.cfg.ID:
		why = fmt.Sprintf("chunk addressed to node %d", c.GetTo())
	case !n.isPeer(c.GetFrom()):
		why = fmt.Sprintf("node %d is not a member", c.GetFrom())
	case c.GetTerm() < n.raft.Term():
		why = fmt.Sprintf("chunk of term %d, this node is at term %d", c.GetTerm(), n.raft.Term())
	}
	if why != "" {
		n.log.Debug("refused a snapshot chunk", "from", c.GetFrom(), "reason", why)
		ctx.Respond(chunkAck(c, true, 0))
		return
	}
	ctx.Forward(n.receiver)
}

func chunkAck(c *raftpb.SnapshotChunk, reject bool, offset uint64) *raftpb.SnapshotChunkAck {
	return &raftpb.SnapshotChunkAck{
		ClusterId: c.GetClusterId(), From: c.GetTo(), To: c.GetFrom(), Term: c.GetTerm(),
		Index: c.GetIndex(), SnapTerm: c.GetSnapTerm(), Reject: reject, Offset: offset,
	}
}

// imageReceived steps a received image into Raft. Raft may turn it down
// (stale, or the log already holds it); then no Ready carries it and it is
// released at the next Ready, or at once if there is none.
func (n *nodeActor) imageReceived(ctx actor.Context, msg *imageReceived) {
	if n.image != "" {
		// A receiver restarted while an image was installing.
		n.releaseImage(ctx, msg.path)
		return
	}
	m := raftlogic.Message{
		Type: raftlogic.MsgSnap, From: msg.from, To: n.cfg.ID, Term: msg.raftTerm,
		Snapshot: raftlogic.Snapshot{Meta: msg.meta, Data: []byte(msg.path)},
	}
	if err := n.raft.Step(m); err != nil {
		n.log.Warn("dropped a snapshot", "from", msg.from, "err", err)
		n.releaseImage(ctx, msg.path)
		return
	}
	n.image = msg.path
	if !n.raft.HasReady() {
		n.releaseImage(ctx, msg.path)
		return
	}
	n.scheduleFlush(ctx)
}

// releaseImage deletes a received image and lets the receiver take the next
// transfer.
func (n *nodeActor) releaseImage(ctx actor.Context, path string) {
	if path == n.image {
		n.image = ""
	}
	removeFile(n.log, path)
	ctx.Send(n.receiver, &imageReleased{})
}

// snapshotReceiver is a node's snapshot-recv child: it writes the chunks of
// an incoming snapshot to a file and verifies the image (see the rules at
// the top of this file). Every chunk reaching it has passed the node's
// checks; it answers each one to its sender.
type snapshotReceiver struct {
	dir  string
	idle time.Duration
	log  *slog.Logger
	// reserve is the node's disk reserve: a chunk that would eat into it
	// ends the transfer (Badger, on the same filesystem, needs that room).
	reserve int64

	cur      *incomingSnapshot
	gen      uint64
	handedOn bool
}

// incomingSnapshot is a transfer in progress.
type incomingSnapshot struct {
	from, raftTerm  uint64
	index, snapTerm uint64
	conf            raftlogic.ConfState
	file            *os.File
	written         uint64
	gen             uint64
	lastChunk       time.Time
	timer           *time.Timer
}

func (r *snapshotReceiver) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *raftpb.SnapshotChunk:
		r.chunk(ctx, msg)
	case *imageReleased:
		r.handedOn = false
	case *receiveIdle:
		r.checkIdle(ctx, msg.gen)
	case *actor.Stopping, *actor.Restarting:
		r.drop("the receiver is stopping")
	}
}

func (r *snapshotReceiver) chunk(ctx actor.Context, c *raftpb.SnapshotChunk) {
	refuse := func(why string) {
		r.log.Debug("refused a snapshot chunk", "from", c.GetFrom(), "index", c.GetIndex(), "offset", c.GetOffset(), "reason", why)
		ctx.Respond(chunkAck(c, true, 0))
	}
	if r.handedOn {
		refuse("an image is being installed")
		return
	}
	cur := r.cur
	same := cur != nil && cur.from == c.GetFrom() && cur.raftTerm == c.GetTerm() &&
		cur.index == c.GetIndex() && cur.snapTerm == c.GetSnapTerm()
	switch {
	case same && c.GetOffset() < cur.written:
		// A duplicate, or the sender started the same image over: it
		// resumes from what is already here.
		ctx.Respond(chunkAck(c, false, cur.written))
		return
	case same && c.GetOffset() == cur.written:
		// The next chunk.
	case same:
		r.drop("a gap in the chunks")
		refuse("a gap in the chunks")
		return
	case c.GetOffset() != 0:
		refuse("no such transfer in progress")
		return
	case cur != nil && cur.from != c.GetFrom() && c.GetTerm() <= cur.raftTerm:
		refuse(fmt.Sprintf("node %d is sending a snapshot of term %d", cur.from, cur.raftTerm))
		return
	default:
		if cur != nil {
			r.drop(fmt.Sprintf("replaced by a transfer from node %d at term %d", c.GetFrom(), c.GetTerm()))
		}
		if err := r.start(ctx, c); err != nil {
			r.log.Error("start receiving a snapshot", "err", err)
			refuse("cannot store it")
			return
		}
	}

	cur = r.cur
	if err := persist.CheckSpace(r.dir, r.reserve, int64(len(c.GetData()))); err != nil {
		r.log.Warn("refused a snapshot: no room for it", "from", c.GetFrom(), "err", err)
		r.drop("disk space below the reserve")
		refuse("disk space below the reserve")
		return
	}
	if _, err := cur.file.Write(c.GetData()); err != nil {
		r.log.Error("write received snapshot", "err", err)
		r.drop("write failed")
		refuse("cannot store it")
		return
	}
	cur.written += uint64(len(c.GetData()))
	cur.lastChunk = time.Now()
	if !c.GetLast() {
		ctx.Respond(chunkAck(c, false, cur.written))
		return
	}

	// The whole image is here: make it durable and check it before anyone
	// relies on it.
	r.cur = nil
	cur.timer.Stop()
	if err := seal(cur); err != nil {
		r.log.Warn("refused a received snapshot", "from", cur.from, "index", cur.index, "bytes", cur.written, "err", err)
		removeFile(r.log, cur.file.Name())
		refuse("the image does not check out")
		return
	}
	ctx.Respond(chunkAck(c, false, cur.written))
	r.handedOn = true
	ctx.Send(ctx.Parent(), &imageReceived{
		path: cur.file.Name(), from: cur.from, raftTerm: cur.raftTerm,
		meta: raftlogic.SnapshotMeta{Index: cur.index, Term: cur.snapTerm, ConfState: cur.conf},
	})
}

// start opens a new transfer for first chunk c.
func (r *snapshotReceiver) start(ctx actor.Context, c *raftpb.SnapshotChunk) error {
	f, err := os.CreateTemp(r.dir, "recv-*.img")
	if err != nil {
		return err
	}
	r.gen++
	gen, root, self := r.gen, ctx.ActorSystem().Root, ctx.Self()
	r.cur = &incomingSnapshot{
		from: c.GetFrom(), raftTerm: c.GetTerm(), index: c.GetIndex(), snapTerm: c.GetSnapTerm(),
		conf: raftlogic.ConfState{
			Voters:         slices.Clone(c.GetVoters()),
			VotersOutgoing: slices.Clone(c.GetVotersOutgoing()),
			Learners:       slices.Clone(c.GetLearners()),
		},
		file: f, gen: gen, lastChunk: time.Now(),
		timer: time.AfterFunc(r.idle, func() { root.Send(self, &receiveIdle{gen: gen}) }),
	}
	r.log.Info("receiving snapshot", "from", c.GetFrom(), "term", c.GetTerm(), "index", c.GetIndex())
	return nil
}

// checkIdle drops transfer gen if no chunk extended it for the idle
// timeout, and otherwise checks again when it could next be idle that long.
func (r *snapshotReceiver) checkIdle(ctx actor.Context, gen uint64) {
	cur := r.cur
	if cur == nil || cur.gen != gen {
		return
	}
	idle := time.Since(cur.lastChunk)
	if idle >= r.idle {
		r.drop(fmt.Sprintf("no chunk for %v", r.idle))
		return
	}
	root, self := ctx.ActorSystem().Root, ctx.Self()
	cur.timer = time.AfterFunc(r.idle-idle, func() { root.Send(self, &receiveIdle{gen: gen}) })
}

// drop abandons the transfer in progress, if any, and deletes its file.
func (r *snapshotReceiver) drop(why string) {
	cur := r.cur
	if cur == nil {
		return
	}
	r.cur = nil
	cur.timer.Stop()
	cur.file.Close()
	removeFile(r.log, cur.file.Name())
	r.log.Info("dropped a partly received snapshot", "from", cur.from, "index", cur.index, "bytes", cur.written, "reason", why)
}

// seal syncs a complete image to disk, closes it and verifies it: the whole
// image must check out and cover the index and term its chunks announced.
func seal(in *incomingSnapshot) error {
	f := in.file
	err := f.Sync()
	if err == nil {
		_, err = f.Seek(0, 0)
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("sync received snapshot: %w", err)
	}
	index, term, err := kvstate.VerifySnapshot(bufio.NewReaderSize(f, 64<<10))
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close received snapshot: %w", cerr)
	}
	if err != nil {
		return err
	}
	if index != in.index || term != in.snapTerm {
		return fmt.Errorf("%w: the image covers index %d term %d, its chunks said index %d term %d",
			kvstate.ErrBadSnapshot, index, term, in.index, in.snapTerm)
	}
	return nil
}

func removeFile(l *slog.Logger, path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		l.Warn("remove snapshot file", "path", path, "err", err)
	}
}
