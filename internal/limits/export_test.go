package limits

// Test hooks: the sweep of maxValueSizes and the constants the external
// tests check the derived limits against.
func Sweep() []int { return sweep() }

const (
	PeerBatchBudget   = peerBatchBudget
	PeerBatchOverhead = peerBatchOverhead
	PeerFraming       = peerFraming
)

// PeerMaxRecv is the peer receive limit every configuration shares.
func PeerMaxRecv() int { return peerMaxRecv() }
