package persist

import (
	"encoding/binary"

	"github.com/raftkv/raftkv/raftlogic"
)

// The encode buffer of Save. A batch turns the records of one plan into
// bytes and hands them to a TxnWriter; it owns no transaction itself.

// maxKeptBuf bounds the encoding buffer a LogStore keeps between batches; a
// rare huge batch should not pin its buffer for the life of the node.
const maxKeptBuf = 4 << 20

// batch encodes the records of one Save into buf and feeds them to w: one
// transaction, or (when split) several.
//
// Badger keeps the key and value slices given to Set until the transaction
// commits, so buf is only ever appended to while a batch lives: bytes handed
// to a transaction are never overwritten. When append must grow buf, the old
// array stays alive through those references. Save reuses buf for the next
// batch, after every transaction of this one has finished.
type batch struct {
	w   *TxnWriter
	buf []byte
}

// newBatch returns a batch for p with buf sized for it. Unless split, every
// write goes into one transaction and a full one fails with
// badger.ErrTxnTooBig.
func (s *LogStore) newBatch(p *plan, split bool) *batch {
	need := int(p.size())
	for _, d := range p.del {
		if d.lo <= d.hi {
			need += int(min(d.hi-d.lo+1, 1<<20)) * entryKeyLen
		}
	}
	buf := s.buf[:0]
	if cap(buf) < need {
		buf = make([]byte, 0, need)
	}
	w := NewTxnWriter(s.db, nil)
	w.whole = !split
	return &batch{w: w, buf: buf}
}

// keepBuf hands b's buffer back to s for the next batch, once every
// transaction of b has finished.
func (s *LogStore) keepBuf(b *batch) {
	s.buf = b.buf[:0]
	if cap(s.buf) > maxKeptBuf {
		s.buf = nil
	}
}

func snapshotMetaMax(m raftlogic.SnapshotMeta) int {
	cs := m.ConfState
	return recordMin + (5+len(cs.Voters)+len(cs.VotersOutgoing)+len(cs.Learners))*binary.MaxVarintLen64
}

// since returns what was appended to buf from start on, capped so that no
// later append can write into it.
func (b *batch) since(start int) []byte { return b.buf[start:len(b.buf):len(b.buf)] }

func (b *batch) entryKey(i uint64) []byte {
	start := len(b.buf)
	b.buf = appendEntryKey(b.buf, i)
	return b.since(start)
}

func (b *batch) putEntry(e raftlogic.Entry) error {
	k := b.entryKey(e.Index)
	start := len(b.buf)
	b.buf = appendEntry(b.buf, e)
	return b.w.Set(k, b.since(start))
}

func (b *batch) putSnapshotMeta(m raftlogic.SnapshotMeta) error {
	start := len(b.buf)
	b.buf = appendSnapshotMeta(b.buf, m)
	return b.w.Set([]byte(keySnapshot), b.since(start))
}

func (b *batch) putLast(i uint64) error {
	start := len(b.buf)
	b.buf = appendIndexRecord(b.buf, i)
	return b.w.Set([]byte(keyLast), b.since(start))
}

func (b *batch) putHardState(hs raftlogic.HardState) error {
	start := len(b.buf)
	b.buf = appendHardState(b.buf, hs)
	return b.w.Set([]byte(keyHardState), b.since(start))
}

func (b *batch) delEntry(i uint64) error { return b.w.Delete(b.entryKey(i)) }

// commit commits the current transaction, if any.
func (b *batch) commit() error { return b.w.Commit() }
