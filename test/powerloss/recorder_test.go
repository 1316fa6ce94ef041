//go:build linux

package powerloss_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// opKind says what one recorded operation on the disk image was.
type opKind uint8

const (
	// opWrite: the device wrote bytes at an offset.
	opWrite opKind = iota + 1
	// opBarrier: the device was flushed (FUSE FSYNC on the image): every
	// write recorded before it is durable.
	opBarrier
)

// op is one entry of the operation log.
type op struct {
	kind opKind
	off  int64 // device offset of a write
	n    int   // length of a write
	at   int64 // where a write's bytes are in the recorder's data file
}

// A position in the operation log is a count of operations: the crash
// state "at position p" is what the disk may hold when the power fails
// after the first p operations happened and before the next one.

// recorder is the disk under test. It keeps the device's current content
// (what reads return) and an ordered log of every write and every flush,
// from which any crash state can be rebuilt later. Both live in files on
// the real disk, so memory use does not grow with the workload.
type recorder struct {
	size int64

	mu      sync.Mutex
	image   *os.File // current content of the device (sparse)
	data    *os.File // the bytes of every write, appended in log order
	dataEnd int64
	ops     []op
	err     error // first failure of the recorder's own files: the device then fails every write
}

func newRecorder(dir string, size int64) (*recorder, error) {
	image, err := os.Create(filepath.Join(dir, "live.img"))
	if err != nil {
		return nil, err
	}
	if err := image.Truncate(size); err != nil {
		image.Close()
		return nil, err
	}
	data, err := os.Create(filepath.Join(dir, "writes.bin"))
	if err != nil {
		image.Close()
		return nil, err
	}
	return &recorder{size: size, image: image, data: data}, nil
}

// pos is the current length of the operation log.
func (r *recorder) pos() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ops)
}

func (r *recorder) readAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, nil
	}
	p = p[:min(int64(len(p)), r.size-off)]
	n, err := r.image.ReadAt(p, off)
	if n == len(p) {
		err = nil
	}
	return n, err
}

// writeAt records a write and applies it to the live image. The write is
// in the log before the device reports it complete (the FUSE reply), which
// is what makes a later barrier cover it.
func (r *recorder) writeAt(p []byte, off int64) error {
	if off < 0 || off+int64(len(p)) > r.size || off%sectorSize != 0 || len(p)%sectorSize != 0 {
		return fmt.Errorf("write of %d bytes at %d: not whole sectors of the %d-byte device", len(p), off, r.size)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	if _, err := r.data.WriteAt(p, r.dataEnd); err != nil {
		r.err = fmt.Errorf("recorder data file: %w", err)
		return r.err
	}
	if _, err := r.image.WriteAt(p, off); err != nil {
		r.err = fmt.Errorf("recorder image: %w", err)
		return r.err
	}
	r.ops = append(r.ops, op{kind: opWrite, off: off, n: len(p), at: r.dataEnd})
	r.dataEnd += int64(len(p))
	return nil
}

func (r *recorder) barrier() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, op{kind: opBarrier})
}

// recording is the finished operation log of a recorder, read-only.
func (r *recorder) recording() *recording {
	r.mu.Lock()
	defer r.mu.Unlock()
	return &recording{size: r.size, data: r.data, ops: append([]op(nil), r.ops...)}
}

func (r *recorder) close() error {
	return errors.Join(r.image.Close(), r.data.Close())
}

// The FUSE side: a root directory holding one regular file, disk.img,
// whose reads and writes are the recorder's.
//
// Why every write the loop driver completes is in the log before the FSYNC
// that must cover it:
//   - open returns FOPEN_DIRECT_IO, so the kernel keeps no page cache for
//     disk.img: each write(2) the loop driver makes to its backing file
//     becomes a FUSE WRITE and returns only after our reply, and writeAt
//     logs before replying;
//   - go-fuse never grants the kernel CAP_WRITEBACK_CACHE, so writes are
//     never held back and sent later;
//   - the loop driver completes a block request only after its write(2)
//     returned, and the block layer sends a flush (REQ_PREFLUSH, and FUA,
//     which loop turns into a flush) only for requests already completed;
//     loop serves a flush with vfs_fsync on disk.img, which FUSE sends us
//     as FSYNC (we answer it, so the kernel never decides fsync is
//     unsupported and stops sending it).
//
// FUSE FLUSH is close(2), not durability, and is not a barrier.
// TestRecorderSeesUnsyncedWrites checks the whole chain.

type diskRoot struct {
	fs.Inode
	rec *recorder
}

var _ fs.NodeOnAdder = (*diskRoot)(nil)

func (d *diskRoot) OnAdd(ctx context.Context) {
	img := d.NewPersistentInode(ctx, &diskImage{rec: d.rec}, fs.StableAttr{Mode: syscall.S_IFREG})
	d.AddChild("disk.img", img, false)
}

type diskImage struct {
	fs.Inode
	rec *recorder
}

var (
	_ fs.NodeOpener    = (*diskImage)(nil)
	_ fs.NodeGetattrer = (*diskImage)(nil)
	_ fs.NodeSetattrer = (*diskImage)(nil)
	_ fs.NodeReader    = (*diskImage)(nil)
	_ fs.NodeWriter    = (*diskImage)(nil)
	_ fs.NodeFsyncer   = (*diskImage)(nil)
	_ fs.NodeFlusher   = (*diskImage)(nil)
)

func (d *diskImage) Open(context.Context, uint32) (fs.FileHandle, uint32, syscall.Errno) {
	return nil, fuse.FOPEN_DIRECT_IO, 0
}

func (d *diskImage) Getattr(_ context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFREG | 0o600
	out.Size = uint64(d.rec.size)
	out.Blksize = 4096
	out.Blocks = uint64(d.rec.size / 512)
	return 0
}

// Setattr accepts time and mode changes (fsync may send them) and refuses
// to resize: the device has a fixed size.
func (d *diskImage) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok && int64(size) != d.rec.size {
		return syscall.EPERM
	}
	return d.Getattr(ctx, fh, out)
}

func (d *diskImage) Read(_ context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := d.rec.readAt(dest, off)
	if err != nil {
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (d *diskImage) Write(_ context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if err := d.rec.writeAt(data, off); err != nil {
		return 0, syscall.EIO
	}
	return uint32(len(data)), 0
}

func (d *diskImage) Fsync(context.Context, fs.FileHandle, uint32) syscall.Errno {
	d.rec.barrier()
	return 0
}

func (d *diskImage) Flush(context.Context, fs.FileHandle) syscall.Errno { return 0 }

// fuseDisk is a recorder served as <mnt>/disk.img.
type fuseDisk struct {
	rec    *recorder
	path   string // the image file, to attach as a loop device
	umount func() error
}

// mountDisk serves a new recorder of size bytes through FUSE at
// dir/fuse; its files go in dir. It skips t when this process may not
// mount. The unmount is registered with t (and may be called earlier).
func mountDisk(t *testing.T, dir string, size int64) *fuseDisk {
	t.Helper()
	rec, err := newRecorder(dir, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.close() })
	mnt := filepath.Join(dir, "fuse")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	timeout := time.Second
	server, err := fs.Mount(mnt, &diskRoot{rec: rec}, &fs.Options{
		MountOptions: fuse.MountOptions{
			// There is no fusermount here, and as root none is needed.
			DirectMountStrict: true,
			FsName:            "raftkv-powerloss",
			Name:              "powerloss",
			// Fewer, larger requests: the loop driver writes up to 1 MiB.
			MaxWrite:      1 << 20,
			DisableXAttrs: true,
		},
		AttrTimeout:  &timeout,
		EntryTimeout: &timeout,
	})
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot mount a FUSE filesystem here (%v): the power-loss test needs CAP_SYS_ADMIN", err)
	}
	if err != nil {
		t.Fatalf("mount FUSE disk: %v", err)
	}
	if err := closeFUSEOnExec(); err != nil {
		server.Unmount()
		t.Fatalf("mark /dev/fuse close-on-exec: %v", err)
	}
	umount := undoOnce(t, "unmount FUSE disk "+mnt, func() error {
		if err := server.Unmount(); err != nil {
			// Something (a loop device we failed to detach) still holds
			// the image: detach the mount so nothing is left behind.
			return errors.Join(err, syscall.Unmount(mnt, syscall.MNT_DETACH))
		}
		return nil
	})
	return &fuseDisk{rec: rec, path: filepath.Join(mnt, "disk.img"), umount: umount}
}
