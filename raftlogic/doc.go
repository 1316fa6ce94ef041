// Package raftlogic is the Raft consensus algorithm as a deterministic state
// machine: no goroutines, no clocks, no I/O, no global state. It owns the
// rules of Raft — elections, log replication, commitment, snapshots,
// linearizable reads, leadership transfer — and nothing else. It must never
// touch a disk, a network or a timer, so that every decision it makes can be
// replayed exactly from its inputs; that is what lets the simulation in its
// tests explore thousands of fault schedules.
//
// # Driving a node
//
// A driver (in RaftKV, the node actors) owns one *Node and feeds it three
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
// After any input, the driver asks HasReady and, if so, takes a Ready, acts
// on it in the order its documentation gives — persist, send, apply, answer
// reads — and calls Advance. A minimal loop:
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
// # What is covered
//
// Leader election with randomized timeouts and the log up-to-date check
// (§5.2, §5.4.1); replication with the consistency check, conflict
// truncation and fast back-off by conflict term (§5.3); commitment only of
// current-term entries counted by a quorum (§5.4.2, Figure 8); PreVote and
// CheckQuorum (thesis 9.6, 6.2); ReadIndex reads sharing confirmation rounds
// (thesis 6.4); leadership transfer (thesis 3.10); snapshots and log
// compaction (§7), with the snapshot image supplied by the driver. The
// configuration (ConfState) lives in snapshots and is restored with them;
// changing membership at run time (EntryConfChange) is reserved for later.
package raftlogic
