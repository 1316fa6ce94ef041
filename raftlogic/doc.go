// Package raftlogic is the Raft consensus algorithm as a deterministic state
// machine: no goroutines, no clocks, no I/O, no global state.
//
// It owns the rules of Raft — elections, log replication, commitment,
// snapshots, linearizable reads, leadership transfer — and nothing else. It
// must never touch a disk, a network or a timer, so that every decision it
// makes can be replayed exactly from its inputs; that is what lets the
// simulation in its tests explore thousands of fault schedules. It must
// never know what a command means, how a log is stored or how a message
// travels: those belong to its driver.
//
// # A reusable core, with no compatibility promise yet
//
// raftlogic is RaftKV's Raft core, shaped like etcd-io/raft so that it could
// serve another project: a driver feeds it Tick, Step and requests and acts
// on the Ready it hands back. Nothing in it depends on the rest of RaftKV.
// Its surface is deliberately small:
//
//   - building a node: NewNode, Config, InitialState;
//   - inputs: Node.Tick, Node.Step, and the requests Node.Propose,
//     Node.ProposeConfChange, Node.ReadIndex, Node.TransferLeadership,
//     Node.Compact and Node.ReportSnapshot;
//   - output: Node.HasReady, Node.Ready and Node.Advance, with the Ready
//     helpers Ready.MustSync and Ready.SplitMessages; Node.StableTo, with
//     Config.AsyncStorageWrites, for writes that finish later; Node.Status
//     for monitoring;
//   - the data a driver stores and sends: Entry, HardState, Snapshot,
//     SnapshotMeta, ConfState, Message, ReadState, SoftState and their
//     enumerations (EntryType, MessageType, Role, None);
//   - membership: ConfChange, ConfChangeSingle, ConfChangeType,
//     DecodeConfChange, MemberStatus (in Status), Ready.ConfState;
//   - refusals: the sentinel errors (compare with errors.Is) and
//     *NotLeaderError.
//
// Everything else is unexported; tests reach internals from inside the
// package. Compatibility: none yet. The package is used only inside this
// module, and its API changes together with its one driver (package actors)
// whenever RaftKV needs it.
// Applications use RaftKV through the root package, never through this one.
//
// # Driving a node
//
// A driver (in RaftKV, the node actor) owns one *Node and feeds it three
// kinds of input, all from one goroutine:
//
//   - Tick, at a fixed interval: time passes only through Tick. Election and
//     heartbeat timeouts are counted in ticks (Config.ElectionTick,
//     Config.HeartbeatTick); randomness comes only from Config.Seed.
//   - Step, for every message that arrives from a peer. Bad or foreign
//     messages are refused with an error and change nothing.
//   - Requests: Propose, ReadIndex, TransferLeadership, Compact. A request
//     that cannot be served is refused at once with a *NotLeaderError that
//     names the known leader (errors.Is(err, ErrNotLeader)); nothing is ever
//     dropped silently.
//
// After any input, the driver asks HasReady and, if so, takes a Ready,
// handles it as the Ready contract below says, and calls Advance. A minimal
// loop, in the plain order:
//
//	for {
//		select {
//		case <-ticker.C:
//			n.Tick()
//		case m := <-inbox:
//			_ = n.Step(m) // log refused messages
//		}
//		if n.HasReady() {
//			rd := n.Ready()
//			store.Save(rd.HardState, rd.Entries, rd.Snapshot) // and fsync
//			transport.Send(rd.Messages)
//			sm.Install(rd.Snapshot); sm.Apply(rd.CommittedEntries)
//			answerReads(rd.ReadStates)
//			n.Advance(rd)
//		}
//	}
//
// A restarted node is built with NewNode from what storage holds
// (InitialState), including how far the state machine applied, and carries
// on where it stopped.
//
// # The Ready contract
//
// A driver holds at most one Ready at a time: it calls Advance with it
// before it takes the next. Tick, Step and the requests may be called in
// between (RaftKV's node actor keeps taking input while a snapshot
// installs). Advance means every step below is done for that Ready. The
// plain order is:
//
//  1. Persist Snapshot (if not empty), then Entries, then HardState (if not
//     empty), and sync. Entries replace any stored entries at the same index
//     and after it. Ready.MustSync says whether there is anything to write:
//     a change of the commit index alone need not be persisted when the
//     state machine's applied index is durable, as it is in RaftKV.
//  2. Send Messages. They may promise what step 1 makes durable (a vote, an
//     acknowledgement of entries), so they leave only after it. A MsgSnap
//     carries only the metadata of the snapshot the log starts after; the
//     driver attaches that image (the one it captured for Compact, or
//     received) and later tells the leader how sending it ended with
//     ReportSnapshot.
//  3. Install Snapshot into the state machine (if not empty), then apply
//     CommittedEntries in order.
//  4. Answer ReadStates once the state machine has applied their Index.
//
// Three departures from the plain order are safe, and RaftKV's node actor
// takes all three, in this order: the leader's early messages, apply,
// install, persist, the other messages, reads, Advance. The simulation in
// this package's tests drives nodes in that same order, with crashes between
// the steps.
//
//   - A leader may send its replication messages before or while it
//     persists its own Entries (Raft thesis 10.2.1): it counts its own log
//     toward commit only when Advance (or, with asynchronous writes,
//     StableTo) reports it durable.
//     Ready.SplitMessages says which messages may go early (none, while
//     the only voter of its configuration leads a term not yet durable).
//   - CommittedEntries may be applied before or while the Ready is
//     persisted: every committed entry handed out is already durable in the
//     local log, and a restarted node takes the state machine's applied
//     index as committed.
//   - A received Snapshot may be installed before it is persisted, if the
//     driver, at restart, takes a state machine that is ahead of its log as
//     the newest snapshot.
//
// In the plain order, a crash between persisting a snapshot and installing
// it leaves the state machine behind the log; InitialState.Applied may not be
// below InitialState.Snapshot.Index, so the driver installs the durable
// snapshot before it calls NewNode.
//
// # Asynchronous storage writes
//
// With Config.AsyncStorageWrites the node does not wait for its disk: the
// driver hands each Ready's write to a writer that works in the
// background, and learns of durability later. Advance then means the
// Ready was handed out, not that it is durable, and the contract becomes:
//
//  1. Send the early messages (SplitMessages' beforePersist) at once.
//  2. Hand the write (Entries, then HardState; MustSync against the last
//     hard state handed to the writer says whether there is one) to the
//     writer, which completes writes in the order handed, and queue the
//     Ready's other messages behind it: they leave only once this write
//     and every earlier one are durable, even when this Ready writes
//     nothing (an answer may promise what an earlier write makes true).
//  3. Apply CommittedEntries and answer ReadStates as in the plain order:
//     neither waits for the write. Committed entries are handed out only
//     as far as the log is reported durable.
//  4. Call Advance, without waiting for the write.
//  5. When a write is durable (and every earlier one), call
//     Node.StableTo with its last entry's index and term, once, in the
//     order the writes were handed out; a report may come late. A write
//     without entries is not reported. Only then does a leader count
//     that entry toward commit; it broadcasts a commit index that moves.
//
// Entries handed out are not handed out again, unless a truncation
// replaces them: then the next Ready carries the replacing entries, which
// overwrite the stored ones from their first index on (as in the plain
// order), and a report for the replaced write is ignored, since the log no
// longer holds its last entry. A report names an entry, not just an
// index, so that it cannot mark the replacing entries durable. Nor does it
// make durable what a write still in flight will overwrite: a suffix
// replaced and then replaced back by the original entries (three leaders
// in turn) holds the reported entry again while the second write has yet
// to land.
//
// A Ready carrying a Snapshot is the exception: the driver waits until
// every write handed out before it is durable (reporting them), persists
// the snapshot with the Ready's Entries and HardState, sends the Ready's
// other messages, and calls Advance only then; Advance marks that write
// durable as in the plain order. The snapshot may still be installed
// before it is persisted (the third departure above). RaftKV's node actor
// installs a snapshot in a separate step anyway, with the node parked.
//
// A crash loses every write not yet durable; writes complete in order, so
// storage holds at restart the result of the writes up to some point, and
// the node restarts from it as in the plain order. The messages that depended on
// the lost writes never left. The simulation drives nodes in both modes,
// mixed in one cluster, with disks that finish writes at their own pace or
// stall, reports that lag behind them, and crashes that lose the writes
// still queued.
//
// # Membership
//
// The configuration (ConfState: Voters, VotersOutgoing while joint,
// Learners) changes at run time through EntryConfChange entries, proposed
// on the leader with Node.ProposeConfChange. Each entry's Data holds the
// change and the whole configuration it results in; DecodeConfChange reads
// it (encoding version 1, documented on encodeConfChange).
//
// A configuration takes effect on a node when its entry is appended to the
// node's log, committed or not (Raft thesis 4.1), not when it is applied.
// Why on append: a node's configuration is then a function of its log
// alone. It needs no knowledge of what is committed (which a follower
// learns late, and a restarted node not at all until a leader tells it),
// and restart, truncation and snapshots need no state beyond the log. With
// one change in flight at a time, every node that could count a quorum
// for an entry uses either the configuration before the change or the one
// after it, whose majorities overlap; taking a configuration on apply
// would add a third moment, and nodes that disagree on the rule break
// that (the simulation shows it: with some nodes taking the configuration
// on commit, it finds leaders elected without a majority of their
// configuration, and committed entries lost).
// The price is that a configuration can be undone: when a leader truncates
// an uncommitted conf entry, the node reverts to the configuration before
// it. The node derives its configuration from its log at every step — the
// snapshot's ConfState, then every conf entry after it — and NewNode does
// the same at restart.
//
// The rules raftlogic enforces: a new node joins as a learner (it gets the
// log but never votes, never campaigns, and its acknowledgements count
// toward no commit, read or CheckQuorum), then is promoted, once caught up
// (Config.MaxLearnerLag); one change is in flight at a time, and a new
// leader first commits an entry of its term; a change of more than one
// voter goes through a joint configuration, in which elections, commitment,
// ReadIndex confirmation and CheckQuorum need a majority of both halves,
// and which the leader leaves by itself (an entry with no Changes) once the
// joint entry commits; a leader that removes itself leads on, not counting
// itself, until the removal commits, then hands over to the most
// caught-up voter (MsgTimeoutNow) and steps down. A node that is not a
// voter of the configuration it knows never campaigns, unless that
// configuration removed it and is not known committed: a removed node may
// still be needed to elect anyone then (see promotable in membership.go),
// and wins, if at all, by the votes of the configuration without it.
//
// What a driver does:
//
//   - Ready.ConfState, when not nil, is the configuration now in force:
//     start connections to members that are new in it, and stop those to
//     nodes no longer in it. It changes on append (and truncation, and a
//     received snapshot), so it may come before the entry is durable or
//     committed, and may be undone by a later Ready. Status.Conf gives the
//     configuration at start; Status.Members the roles and, on the leader,
//     each member's match index (its lag is LastIndex - Match).
//   - A conf entry in Entries is persisted like any entry; nothing else is
//     stored for it.
//   - A conf entry in CommittedEntries is applied through DecodeConfChange:
//     the state machine records the resulting ConfState as of that index
//     (and whatever it keeps from ConfChange.Context, such as addresses),
//     so that the snapshots it captures carry the configuration as of
//     their index. Node.Compact returns that configuration in its
//     SnapshotMeta: store it with the snapshot. A node whose removal it
//     applies may be stopped; a leader hands over by itself.
//   - A received snapshot's Meta.ConfState is the configuration as of its
//     index; the state machine takes it when it installs the image. A
//     driver that rebuilds a snapshot from a state machine ahead of its
//     log (the third departure in the Ready contract) uses the state
//     machine's own configuration.
//   - To add a node: start it with the zero InitialState (empty ConfState,
//     no log) and the network route to it, then propose
//     ConfChangeAddLearner on the leader; the leader sends it the log or
//     a snapshot, from which it takes its configuration. Promote it with
//     ConfChangeAddVoter once Status.Members shows it caught up. A node
//     that received the log from index 1 knows no configuration before the
//     first conf entry in it, so Compact refuses such an index
//     (ErrConfUnknown); compact later.
//   - To replace a lost node: one ConfChange removing it and adding the new
//     node (with a new id) as a learner changes one voter, so it takes
//     effect in one step; promote the new node afterwards.
//
// A removed node usually never learns it was removed: the leader stops
// sending to it as soon as it appends the change. Its operator stops it.
// Until then it times out and campaigns in its old configuration; it cannot
// win (a majority of that configuration holds the newer log), and with
// PreVote (a refused pre-vote does not raise terms) or CheckQuorum (voters
// that hear from their leader ignore it) it does not disturb the cluster.
// Without either, its higher terms depose the leader now and then.
//
// # What is covered
//
// Leader election with randomized timeouts and the log up-to-date check
// (§5.2, §5.4.1); replication with the consistency check, conflict
// truncation and fast back-off by conflict term (§5.3); commitment only of
// current-term entries counted by a quorum (§5.4.2, Figure 8); PreVote and
// CheckQuorum (thesis 9.6, 6.2); ReadIndex reads sharing confirmation rounds
// (thesis 6.4); leadership transfer (thesis 3.10); snapshots and log
// compaction (§7), with the snapshot image supplied by the driver;
// membership change (thesis chapter 4): learners, single-voter changes and
// joint consensus, taking effect on append. The tests are named and filed
// by the section they check.
package raftlogic
