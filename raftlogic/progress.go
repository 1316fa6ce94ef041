package raftlogic

// progressState is how a leader currently replicates to one follower.
type progressState uint8

const (
	// probeState: the leader does not know where the follower's log matches
	// and sends one MsgApp at a time until it finds out.
	probeState progressState = iota
	// replicateState: the follower is known to match; the leader streams
	// MsgApps optimistically, up to MaxInflightMsgs unacknowledged.
	replicateState
	// snapshotState: the follower needs entries the leader compacted; the
	// leader sent a snapshot and sends nothing else until it is installed.
	snapshotState
)

func (s progressState) String() string {
	return [...]string{"probe", "replicate", "snapshot"}[s]
}

// progress is the leader's view of one follower (and of itself).
type progress struct {
	match, next uint64
	state       progressState
	// probeSent pauses a probing leader until the follower answers.
	probeSent bool
	// inflights holds the last index of each unacknowledged MsgApp.
	inflights []uint64
	// pendingSnapshot is the index of the snapshot sent in snapshotState;
	// snapshotElapsed counts ticks since, so a lost snapshot is retried.
	pendingSnapshot uint64
	snapshotElapsed int
	// recentActive is set by any message from the follower and cleared
	// every election timeout, when wasActive takes its value; CheckQuorum
	// reads recentActive, and a membership change both (Node.reachable).
	recentActive, wasActive bool
}

func (p *progress) becomeProbe() {
	if p.state == snapshotState {
		// Resume after the snapshot: it is the best known match.
		p.next = max(p.match+1, p.pendingSnapshot+1)
	} else {
		p.next = p.match + 1
	}
	p.state = probeState
	p.probeSent = false
	p.inflights = p.inflights[:0]
	p.pendingSnapshot = 0
}

func (p *progress) becomeReplicate() {
	p.state = replicateState
	p.next = p.match + 1
	p.probeSent = false
	p.inflights = p.inflights[:0]
}

func (p *progress) becomeSnapshot(index uint64) {
	p.state = snapshotState
	p.pendingSnapshot = index
	p.snapshotElapsed = 0
	p.probeSent = false
	p.inflights = p.inflights[:0]
}

// maybeUpdate records that the follower's log matches ours up to n.
func (p *progress) maybeUpdate(n uint64) bool {
	updated := p.match < n
	if updated {
		p.match = n
		p.probeSent = false
	}
	p.next = max(p.next, n+1)
	return updated
}

// maybeDecrTo handles a rejection of the MsgApp that probed index rejected.
// hint is where the leader's log and the follower's may match at best. It
// reports false for a stale rejection, which must be ignored.
func (p *progress) maybeDecrTo(rejected, hint uint64) bool {
	if p.state == replicateState {
		if rejected <= p.match {
			return false
		}
		p.next = p.match + 1
		return true
	}
	if p.next-1 != rejected {
		return false
	}
	p.next = max(min(rejected, hint+1), p.match+1)
	p.probeSent = false
	return true
}

// paused reports whether the leader must not send this follower a MsgApp now.
func (p *progress) paused(maxInflight int) bool {
	switch p.state {
	case probeState:
		return p.probeSent
	case replicateState:
		return len(p.inflights) >= maxInflight
	}
	return true
}

// sent records a MsgApp whose last entry is last.
func (p *progress) sent(last uint64, nEntries int) {
	switch p.state {
	case replicateState:
		if nEntries > 0 {
			p.next = last + 1
			p.inflights = append(p.inflights, last)
		}
	case probeState:
		p.probeSent = true
	}
}

// freeTo acknowledges every in-flight MsgApp ending at or before index.
func (p *progress) freeTo(index uint64) {
	i := 0
	for i < len(p.inflights) && p.inflights[i] <= index {
		i++
	}
	p.inflights = append(p.inflights[:0], p.inflights[i:]...)
}
