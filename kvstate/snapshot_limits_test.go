package kvstate

import "testing"

// A snapshot image must carry every value a node may store: the reader's
// bound on a value's length may not be below the largest value limit any
// configuration allows.
func TestSnapshotValueBoundCoversTheLargestValue(t *testing.T) {
	if maxSnapValue < MaxValueSizeLimit {
		t.Fatalf("snapshot images refuse values over %d bytes; a configuration may allow %d", maxSnapValue, MaxValueSizeLimit)
	}
}
