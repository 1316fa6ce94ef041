//go:build linux

package powerloss_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
)

// recording is a finished operation log and the bytes of its writes.
type recording struct {
	size int64
	data *os.File
	ops  []op

	// base says, for the durable prefix ops[:baseUpto], which write last
	// wrote each sector (-1: none), so a crash state copies each live
	// sector once instead of replaying every write since mkfs.
	base     []int32
	baseUpto int
}

// durable returns the position just after the last barrier among the
// first p operations (0 if there is none): a crash at p keeps every write
// before it.
func (r *recording) durable(p int) int {
	for i := p - 1; i >= 0; i-- {
		if r.ops[i].kind == opBarrier {
			return i + 1
		}
	}
	return 0
}

// advanceBase makes base describe ops[:d]; it is cheapest when crash
// states are taken in log order.
func (r *recording) advanceBase(d int) {
	if r.base == nil || d < r.baseUpto {
		r.base = slices.Repeat([]int32{-1}, int(r.size/sectorSize))
		r.baseUpto = 0
	}
	for i := r.baseUpto; i < d; i++ {
		if o := r.ops[i]; o.kind == opWrite {
			for s := o.off / sectorSize; s < (o.off+int64(o.n))/sectorSize; s++ {
				r.base[s] = int32(i)
			}
		}
	}
	r.baseUpto = d
}

// crashPoint names one crash state: the power fails after the first pos
// operations. Every write before the last barrier among them survives;
// each later one is torn with probability tear, else kept whole with
// probability keep, else lost, as seed decides.
type crashPoint struct {
	pos        int
	keep, tear float64
	seed       uint64
	why        string // how the point was chosen, for the log
}

func (cp crashPoint) String() string {
	return fmt.Sprintf("op %d (%s; after the last barrier p(keep)=%.2f p(tear)=%.2f, seed %d)", cp.pos, cp.why, cp.keep, cp.tear, cp.seed)
}

// stateStats counts what a crash state kept of the writes after the last
// barrier.
type stateStats struct {
	durable             int // the position of the last barrier
	kept, torn, dropped int
}

func (s stateStats) String() string {
	return fmt.Sprintf("durable up to op %d, then %d writes kept, %d torn, %d lost", s.durable, s.kept, s.torn, s.dropped)
}

// tearUnit is the granularity at which a write may be torn: the ext4
// block size, which is also the page size the loop driver writes in. A
// torn write keeps a random subset of its units.
const tearUnit = 4096

// sectorSize is the loop device's logical block size: every write it
// makes is a whole number of sectors, aligned (the recorder refuses any
// other).
const sectorSize = 512

// materialize writes the crash state cp to path (a new sparse file of the
// device's size). buf is scratch space.
func (r *recording) materialize(path string, cp crashPoint, buf []byte) (st stateStats, err error) {
	f, err := os.Create(path)
	if err != nil {
		return st, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := f.Truncate(r.size); err != nil {
		return st, err
	}
	copyRange := func(o op, from, to int64) error {
		for from < to {
			n := min(to-from, int64(len(buf)))
			if _, err := r.data.ReadAt(buf[:n], o.at+from); err != nil {
				return fmt.Errorf("read recorded write: %w", err)
			}
			if _, err := f.WriteAt(buf[:n], o.off+from); err != nil {
				return err
			}
			from += n
		}
		return nil
	}
	// The durable prefix, one run of sectors from the same write at a time.
	d := r.durable(cp.pos)
	st.durable = d
	r.advanceBase(d)
	for s := 0; s < len(r.base); {
		i := r.base[s]
		e := s + 1
		for e < len(r.base) && r.base[e] == i {
			e++
		}
		if i >= 0 {
			o := r.ops[i]
			from := int64(s)*sectorSize - o.off
			if err := copyRange(o, from, from+int64(e-s)*sectorSize); err != nil {
				return st, err
			}
		}
		s = e
	}
	rng := rand.New(rand.NewPCG(cp.seed, 0x9051))
	for _, o := range r.ops[d:cp.pos] {
		if o.kind != opWrite {
			continue
		}
		switch u := rng.Float64(); {
		case u < cp.tear:
			st.torn++
			// Units end at multiples of tearUnit on the device.
			for from := int64(0); from < int64(o.n); {
				to := min(int64(o.n), (o.off+from)/tearUnit*tearUnit+tearUnit-o.off)
				if rng.IntN(2) == 0 {
					if err := copyRange(o, from, to); err != nil {
						return st, err
					}
				}
				from = to
			}
		case u < cp.tear+(1-cp.tear)*cp.keep:
			st.kept++
			if err := copyRange(o, 0, int64(o.n)); err != nil {
				return st, err
			}
		default:
			st.dropped++
		}
	}
	return st, nil
}

// choosePoints picks n crash points in the operation log between from and
// to (the workload), with these strategies:
//   - inside a flush window (a node had a full memtable waiting to be
//     flushed to a table), a different window each time while any is
//     left: the writes of a memtable Badger has rotated out are the ones
//     a sync of the active one misses;
//   - right at a recorded acknowledgement: the earliest point at which
//     that write must survive;
//   - right before a barrier: the most unsynced writes at stake;
//   - while the nodes were creating their storage, before the cluster
//     was open (identity files, Badger's first files and directories);
//   - uniformly.
//
// Each point gets its own keep and tear probabilities, so some states keep
// almost every unsynced write and others almost none. Points are returned
// in log order.
func choosePoints(rng *rand.Rand, r *recording, h *history, from, to, n int) []crashPoint {
	// Barriers right after a write: a flush often follows another.
	var barriers []int
	for i := max(from, 1); i < to; i++ {
		if r.ops[i].kind == opBarrier && r.ops[i-1].kind == opWrite {
			barriers = append(barriers, i)
		}
	}
	var acks []int
	for _, a := range h.acks {
		if a > from && a <= to {
			acks = append(acks, a)
		}
	}
	var windows []window
	for _, w := range h.flushWindows {
		w.from, w.to = max(w.from, from+1), min(w.to, to)
		if w.from <= w.to {
			windows = append(windows, w)
		}
	}
	rng.Shuffle(len(windows), func(i, j int) { windows[i], windows[j] = windows[j], windows[i] })
	// Two thirds in flush windows: on the code this test was written
	// against, about half of the windows lose acknowledged writes, and
	// visiting more distinct windows is what makes a short run find one.
	strategies := []string{
		"in a flush window", "at an ack", "in a flush window", "before a barrier",
		"in a flush window", "at startup", "in a flush window", "uniform",
		"in a flush window", "in a flush window", "in a flush window", "in a flush window",
	}
	pts := make([]crashPoint, 0, n)
	nextWindow := 0
	for k := 0; k < n; k++ {
		cp := crashPoint{keep: rng.Float64(), tear: rng.Float64() / 4, seed: rng.Uint64(), why: strategies[k%len(strategies)]}
		switch {
		case cp.why == "in a flush window" && len(windows) > 0:
			w := windows[nextWindow%len(windows)]
			nextWindow++
			cp.pos = w.from + rng.IntN(w.to-w.from+1)
		case cp.why == "at an ack" && len(acks) > 0:
			cp.pos = acks[rng.IntN(len(acks))]
		case cp.why == "before a barrier" && len(barriers) > 0:
			cp.pos = barriers[rng.IntN(len(barriers))]
		case cp.why == "at startup" && h.opened > from:
			cp.pos = from + 1 + rng.IntN(h.opened-from)
		default:
			cp.pos, cp.why = from+1+rng.IntN(to-from), "uniform"
		}
		pts = append(pts, cp)
	}
	slices.SortStableFunc(pts, func(a, b crashPoint) int { return a.pos - b.pos })
	return pts
}
