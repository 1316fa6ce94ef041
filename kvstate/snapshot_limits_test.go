package kvstate

import (
	"testing"

	"github.com/raftkv/raftkv/persist"
)

// A snapshot image must carry every value the storage holds: the reader's
// bound on a value's length may not be below the largest value a node's
// database stores (and so the largest maxValueSize allows).
func TestSnapshotValueBoundCoversStoredValues(t *testing.T) {
	if maxSnapValue < persist.MaxValueBytes {
		t.Fatalf("snapshot images refuse values over %d bytes; the storage holds values up to %d", maxSnapValue, persist.MaxValueBytes)
	}
}
