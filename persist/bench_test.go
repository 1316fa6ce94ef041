package persist

import (
	"log/slog"
	"testing"

	"github.com/raftkv/raftkv/raftlogic"
)

// BenchmarkSave measures the group commit on real disk: each Save is one
// Ready of 64 entries of 256 bytes, written in one transaction and synced.
func BenchmarkSave(b *testing.B) {
	const perBatch, size = 64, 256
	db, err := OpenDB(b.TempDir(), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	s := NewLogStore(db)
	if _, err := s.Load(); err != nil {
		b.Fatal(err)
	}
	ents := make([]raftlogic.Entry, perBatch)
	data := make([]byte, size)
	for i := range ents {
		ents[i] = raftlogic.Entry{Term: 1, Data: data}
	}
	b.SetBytes(perBatch * size)
	b.ReportAllocs()
	next := uint64(1)
	batches := 0
	for b.Loop() {
		for i := range ents {
			ents[i].Index = next + uint64(i)
		}
		next += perBatch
		// Commit trails by a batch, as it would on a follower.
		if err := s.Save(raftlogic.HardState{Term: 1, Vote: 1, Commit: next - perBatch - 1}, ents, raftlogic.SnapshotMeta{}); err != nil {
			b.Fatal(err)
		}
		batches++
	}
	b.ReportMetric(float64(batches*perBatch)/b.Elapsed().Seconds(), "entries/s")
}
