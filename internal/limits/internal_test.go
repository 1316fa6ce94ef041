package limits

import (
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/kvstate"
)

// sweep is every maxValueSize the property tests try: the edges, powers of
// two and their neighbours, and the sizes where the batch count changes.
func sweep() []int {
	vs := []int{1, 2, 1000, 65_535, MaxValueSize - 1, MaxValueSize}
	for p := 10; p <= 26; p++ {
		vs = append(vs, 1<<p-1, 1<<p, 1<<p+1)
	}
	for b := 1; b <= MaxWriterBatch+1; b++ {
		// The value whose message just fills a batch of b.
		v := (peerBatchBudget/b - peerBatchOverhead) - MaxEntriesPerMsg*peerEntryOverhead - peerFixedOverhead - kvstate.MaxKeySize - kvstate.MaxCommandOverhead
		vs = append(vs, v-1, v, v+1)
	}
	var out []int
	for _, v := range vs {
		if v >= 1 && v <= MaxValueSize {
			out = append(out, v)
		}
	}
	return out
}

// TestDeriveRefusesWhatCannotBeCarried lowers the storage engine's and the
// transport's ceilings below what a maxValueSize needs: derive must refuse
// it rather than hand out limits that cannot work.
func TestDeriveRefusesWhatCannotBeCarried(t *testing.T) {
	c := realCaps()
	small := c
	small.maxStoredValue = 32 << 20
	if _, err := derive(40<<20, small); err == nil || !strings.Contains(err.Error(), "storage engine") {
		t.Errorf("40 MiB values with a 32 MiB storage limit: %v; want a refusal naming the storage engine", err)
	}
	if _, err := derive(31<<20, small); err != nil {
		t.Errorf("31 MiB values with a 32 MiB storage limit: %v", err)
	}
	narrow := c
	narrow.peerRecv = 16 << 20
	if _, err := derive(20<<20, narrow); err == nil || !strings.Contains(err.Error(), "transport") {
		t.Errorf("20 MiB values with a 16 MiB transport: %v; want a refusal naming the transport", err)
	}
	l, err := derive(8<<20, narrow)
	if err != nil {
		t.Fatalf("8 MiB values with a 16 MiB transport: %v", err)
	}
	if l.PeerWriterBatch*(l.MaxPeerMessage+peerBatchOverhead) > narrow.peerRecv-peerFraming {
		t.Errorf("8 MiB values with a 16 MiB transport: batch of %d does not fit", l.PeerWriterBatch)
	}
}

func TestTryTimeoutAllowsForTheBytes(t *testing.T) {
	for _, c := range []struct {
		base time.Duration
		n    int
		want time.Duration
	}{
		{2 * time.Second, 0, 2 * time.Second},
		{2 * time.Second, -5, 2 * time.Second},
		{time.Second, MinTransferRate, 2 * time.Second},
		{time.Second, MinTransferRate / 2, 1500 * time.Millisecond},
		{2 * time.Second, MaxValueSize, 2*time.Second + time.Duration(MaxValueSize)*time.Second/MinTransferRate},
	} {
		if got := TryTimeout(c.base, c.n); got != c.want {
			t.Errorf("TryTimeout(%v, %d) = %v; want %v", c.base, c.n, got, c.want)
		}
	}
}
