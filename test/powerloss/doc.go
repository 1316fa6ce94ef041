// Package powerloss tests that RaftKV keeps every acknowledged write when
// the machine loses power, by rebuilding the states a disk can be left in
// and opening the database on each. It has no non-test code.
//
// # Method
//
// A FUSE filesystem served by the test process exposes one file, a disk
// image, and records in order every write to it and every fsync of it (a
// barrier). The image is attached as a loop device, formatted ext4 and
// mounted; a child process (the test binary re-executed) runs the real
// embedded three-node database on it, Badger and all, and prints a line
// for each write acknowledged. The parent notes, for each line, how long
// the operation log was when it read it: at or after the write's true
// position. The child is then SIGKILLed.
//
// A crash state at a position p of the log is the disk after the power
// fails there: every write before the last barrier before p, and any
// subset of the writes after it, some torn at 4 KiB. Two thirds of the
// crash points fall inside "flush windows" (while a node had a full
// memtable waiting to be flushed to a table, which the child watches for
// and reports), the others right at an acknowledgement, right before a
// barrier, during the nodes' first start, or anywhere. Each state is
// written as a sparse image on the real disk, mounted (ext4 replays its
// journal), and checked:
//
//   - every node starts (a hole in a node's log or a corrupt record makes
//     raftkv.Open fail);
//   - every write acknowledged at or before p is there: Get returns its
//     value, or the value of a later operation on the key, which was
//     attempted and may have taken effect; a removed key may be absent;
//     nothing never written appears, and no value is damaged;
//   - the replicas agree: after they caught up and were stopped, the three
//     nodes store the same data and the same applied index.
//
// # What it can and cannot see
//
// It loses exactly what the kernel was not asked to persist before the
// power failed: data written through the page cache or an mmap without
// fsync or msync, a file whose directory entry was never synced, writes
// reordered between flushes. A check of process crashes (SIGKILL) cannot
// see any of that: the page cache survives the process.
//
// It does not model a disk that lies about flushes, or damage to data
// already durable (bit rot, misdirected writes); torn writes are at 4 KiB
// granularity only. The positions of acknowledgements are conservative,
// so an ack that the cluster gave slightly before a write became durable
// can be missed. Only ext4 with its default options (data=ordered) is
// tested. The workload's timing varies between runs, so a seed replays
// the workload and the choice of crash points but not the exact recording;
// a failing state's image is kept (path in the log) for inspection.
//
// # Running it
//
// It needs Linux, root, /dev/fuse, loop devices, and losetup, mkfs.ext4,
// mount and umount on PATH; without them it skips, saying why. The default
// run records 600 writes of 32-96 KiB values (a few memtable rotations per
// node) and checks 12 crash states, about a minute on 2 idle cores:
//
//	go test ./test/powerloss/
//	go test ./test/powerloss/ -run '^TestPowerLoss$' -v -powerloss.seed=N   # replay a seed's choices
//	go test ./test/powerloss/ -run '^TestPowerLoss$' -v -timeout=2h \
//		-powerloss.writes=3000 -powerloss.states=300
//
// A long run needs a -timeout to match: 3000 writes take about a minute to
// record and each crash state about 8 s to check (measured: 30 states in
// 5 min 20 s); a run near its deadline stops checking, says so, and cleans
// up.
//
// -powerloss.keep keeps the work directory (recording, crash images, node
// logs) even when the test passes; a failing run always keeps it, with the
// first failing images as they were before recovery. Everything lives
// under $TMPDIR/raftkv-powerloss-<pid>-*; each run first removes the
// mounts, loop devices and directories of runs that were killed (a test
// timeout exits without cleanups), aborting their FUSE connections.
package powerloss
