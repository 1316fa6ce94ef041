//go:build linux

package powerloss_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Everything this package creates on the host (temporary directories, the
// FUSE mount, loop devices, ext4 mounts) lives under a directory named
// workPrefix<pid>-..., so a later run can find and remove what a killed run
// (a test timeout exits without cleanups) left behind, without touching
// anything of a run still alive.
const workPrefix = "raftkv-powerloss-"

// keptMarker is the file in a work directory kept for inspection.
const keptMarker = "KEPT"

// requireHost skips t unless this machine can run the harness: root, the
// FUSE and loop devices, and the tools that attach, format and mount.
func requireHost(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("power-loss tests need root (they mount FUSE and ext4 on loop devices)")
	}
	for _, dev := range []string{"/dev/fuse", "/dev/loop-control"} {
		if _, err := os.Stat(dev); err != nil {
			t.Skipf("power-loss tests need %s: %v", dev, err)
		}
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("power-loss tests need %s on PATH: %v", tool, err)
		}
	}
	fss, err := os.ReadFile("/proc/filesystems")
	if err == nil && !strings.Contains(string(fss), "\text4\n") {
		t.Skip("power-loss tests need ext4 in the kernel (not in /proc/filesystems)")
	}
	sweepStale(t)
}

// workDir makes the test's directory. It is removed when the test passes
// and kept (its path logged) when it fails, with the failing crash images
// in it. The cleanup is registered first, so it runs after every unmount
// and detach.
func workDir(t *testing.T, keep bool) string {
	t.Helper()
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", workPrefix, os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || keep {
			// The marker tells sweepStale the directory was kept on
			// purpose, not abandoned by a killed run.
			if err := os.WriteFile(filepath.Join(dir, keptMarker), nil, 0o600); err != nil {
				t.Errorf("mark the kept work directory: %v", err)
			}
			t.Logf("kept the work directory %s", dir)
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove work directory: %v", err)
		}
	})
	return dir
}

// undoOnce returns f as an undo step that runs at most once: when called,
// or else as t's cleanup (a failed or aborted test still unmounts and
// detaches). Cleanups run in reverse order of registration, which is the
// right order for stacked mounts and devices.
func undoOnce(t *testing.T, what string, f func() error) func() error {
	var (
		once sync.Once
		err  error
	)
	undo := func() error {
		once.Do(func() {
			if e := f(); e != nil {
				err = fmt.Errorf("%s: %w", what, e)
			}
		})
		return err
	}
	t.Cleanup(func() {
		var first bool
		once.Do(func() {
			first = true
			if e := f(); e != nil {
				err = fmt.Errorf("%s: %w", what, e)
			}
		})
		if first && err != nil {
			t.Error(err)
		}
	})
	return undo
}

// command runs a host tool and returns its combined output; the error
// names the command and includes the output.
func command(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// attachLoop attaches file as a new loop device and returns the device and
// its detach step (registered with t).
//
// No --direct-io: the loop driver then writes through the backing file's
// write(2), which for the FUSE image is uncached anyway (FOPEN_DIRECT_IO),
// and for a crash image on the real disk goes through the page cache,
// which is what we want there (nothing about it needs to reach the disk).
func attachLoop(t *testing.T, file string) (string, func() error) {
	t.Helper()
	out, err := command(context.Background(), "losetup", "--find", "--show", file)
	if err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(out)
	detach := undoOnce(t, "detach "+dev, func() error { return detachLoop(dev, file) })
	return dev, detach
}

// detachLoop detaches dev and waits until the kernel has let go of file:
// losetup -d on a device still in use only schedules the detach, and the
// FUSE image cannot be unmounted while a loop device holds it.
func detachLoop(dev, file string) error {
	sys := filepath.Join("/sys/block", filepath.Base(dev), "loop")
	attached := func() bool {
		b, err := os.ReadFile(filepath.Join(sys, "backing_file"))
		return err == nil && strings.TrimSpace(string(b)) == file
	}
	if !attached() {
		return nil // already detached; the name may be another image's by now
	}
	if _, err := command(context.Background(), "losetup", "-d", dev); err != nil {
		return err
	}
	patience := 30 * time.Second
	for begin := time.Now(); attached(); time.Sleep(20 * time.Millisecond) {
		// A device still open at losetup -d is only marked for autoclear:
		// the kernel detaches it when its last user lets go, which for a
		// lazily unmounted filesystem still in use (see unmount) is not
		// worth waiting for.
		if b, _ := os.ReadFile(filepath.Join(sys, "autoclear")); strings.TrimSpace(string(b)) == "1" {
			patience = 2 * time.Second
		}
		if time.Since(begin) > patience {
			if patience < 30*time.Second {
				return nil
			}
			return fmt.Errorf("%s still attached to %s 30 s after losetup -d", dev, file)
		}
	}
	return nil
}

// mkfs makes an ext4 filesystem on dev. No discard (the image is zeros
// already and the recorder has no hole punching); lazy inode table and
// journal init, since a zeroed image needs neither.
func mkfs(t *testing.T, dev string) {
	t.Helper()
	if _, err := command(context.Background(), "mkfs.ext4", "-q", "-F", "-b", "4096",
		"-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", dev); err != nil {
		t.Fatal(err)
	}
}

// mountExt4 mounts dev on dir and returns the unmount step (registered with
// t). noinit_itable keeps ext4's background inode-table zeroing out of the
// recording; everything else is the default (data=ordered, barriers on,
// 5 s journal commits), as a database would find it.
func mountExt4(t *testing.T, dev, dir string) func() error {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := command(context.Background(), "mount", "-t", "ext4", "-o", "noinit_itable", dev, dir); err != nil {
		t.Fatal(err)
	}
	return undoOnce(t, "unmount "+dir, func() error { return unmount(dir) })
}

// unmount unmounts dir, retrying while it is busy (a killed child's files
// are released asynchronously), and detaches it lazily as a last resort,
// or at once when this process itself holds files there (a *heldError):
// waiting would not help.
func unmount(dir string) error {
	var err error
	for try := 0; try < 50; try++ {
		if err = syscall.Unmount(dir, 0); err == nil || errors.Is(err, syscall.EINVAL) {
			return nil // EINVAL: not mounted
		}
		if h := holders(dir); h != "" {
			if lerr := syscall.Unmount(dir, syscall.MNT_DETACH); lerr != nil {
				return errors.Join(err, lerr)
			}
			return &heldError{dir: dir, what: h}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(err, syscall.Unmount(dir, syscall.MNT_DETACH))
}

// heldError reports a mount that had to be detached lazily because this
// process still maps or holds files on it.
type heldError struct{ dir, what string }

func (e *heldError) Error() string {
	return fmt.Sprintf("%s is still in use by this process (%s): detached lazily", e.dir, e.what)
}

// holders lists what this process has open or mapped under dir ("" if
// nothing).
func holders(dir string) string {
	var found []string
	if maps, err := os.ReadFile("/proc/self/maps"); err == nil {
		for _, l := range strings.Split(string(maps), "\n") {
			if i := strings.Index(l, dir+"/"); i >= 0 && !slices.Contains(found, "mapped "+l[i:]) {
				found = append(found, "mapped "+l[i:])
			}
		}
	}
	fds, _ := filepath.Glob("/proc/self/fd/*")
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, dir+"/") {
			found = append(found, "open "+target)
		}
	}
	return strings.Join(found, ", ")
}

// sweepStale removes what runs of this package that no longer exist left
// behind: mounts under their work directories, then loop devices backed by
// files there, then the directories, unless kept on purpose (a failed run
// keeps its directory for inspection).
func sweepStale(t *testing.T) {
	t.Helper()
	tmp := os.TempDir()
	stale := func(path string) bool {
		rel, err := filepath.Rel(tmp, path)
		if err != nil || !strings.HasPrefix(rel, workPrefix) {
			return false
		}
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(rel, workPrefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			return false
		}
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	// Innermost mounts first: mountinfo lists them after the mounts they
	// sit on.
	type mount struct{ dir, fstype, dev string }
	var mounts []mount
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			pre, post, ok := strings.Cut(sc.Text(), " - ")
			fields, tail := strings.Fields(pre), strings.Fields(post)
			if ok && len(fields) > 4 && len(tail) > 0 && stale(fields[4]) {
				mounts = append(mounts, mount{dir: fields[4], fstype: tail[0], dev: fields[2]})
			}
		}
		f.Close()
	}
	// A FUSE disk whose server died can hold I/O (and the processes doing
	// it) forever; aborting its connection makes that I/O fail instead.
	for _, m := range mounts {
		if strings.HasPrefix(m.fstype, "fuse") {
			t.Logf("aborting the FUSE connection of a dead run: %s", m.dir)
			if err := abortFUSE(m.dev); err != nil {
				t.Logf("abort FUSE connection %s: %v", m.dev, err)
			}
		}
	}
	// Loop devices are found while the FUSE mounts still show their
	// backing files' paths; they are detached once the filesystems on them
	// are unmounted (lazily: a busy device detaches when released).
	var loops []string
	files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
	for _, l := range files {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if file := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(string(b)), "(deleted)")); stale(file) {
			loops = append(loops, "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(l))))
		}
	}
	unmountAll := func(fuse bool) {
		for i := len(mounts) - 1; i >= 0; i-- {
			if m := mounts[i]; strings.HasPrefix(m.fstype, "fuse") == fuse {
				t.Logf("removing a stale mount of a dead run: %s", m.dir)
				if err := syscall.Unmount(m.dir, syscall.MNT_DETACH); err != nil {
					t.Logf("unmount %s: %v", m.dir, err)
				}
			}
		}
	}
	unmountAll(false)
	for _, dev := range loops {
		t.Logf("detaching a stale loop device of a dead run: %s", dev)
		if _, err := command(context.Background(), "losetup", "-d", dev); err != nil {
			t.Logf("%v", err)
		}
	}
	unmountAll(true)
	dirs, _ := filepath.Glob(filepath.Join(tmp, workPrefix+"*"))
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, keptMarker)); err == nil || !stale(d) {
			continue
		}
		t.Logf("removing the work directory of a dead run: %s", d)
		if err := os.RemoveAll(d); err != nil {
			t.Logf("remove %s: %v", d, err)
		}
	}
}

// abortFUSE aborts the FUSE connection of the mount whose device is dev
// ("major:minor"; the connection is named by the minor) through the fusectl
// filesystem, mounting it for the occasion if it is not mounted.
func abortFUSE(dev string) error {
	_, minor, ok := strings.Cut(dev, ":")
	if !ok {
		return fmt.Errorf("bad device %q", dev)
	}
	const ctl = "/sys/fs/fuse/connections"
	abort := filepath.Join(ctl, minor, "abort")
	if _, err := os.Stat(abort); err != nil {
		if err := syscall.Mount("fusectl", ctl, "fusectl", 0, ""); err != nil {
			return fmt.Errorf("mount fusectl: %w", err)
		}
		defer syscall.Unmount(ctl, 0)
	}
	return os.WriteFile(abort, []byte("1"), 0o200)
}

// closeFUSEOnExec marks this process's /dev/fuse descriptors close-on-exec.
// go-fuse opens the device without O_CLOEXEC, so every child would inherit
// it; a child still holding it keeps the connection alive after this
// process dies, and its own I/O to the disk then waits forever for a
// server that will never answer (seen: a killed run's child stuck in
// msync, unkillable).
func closeFUSEOnExec() error {
	fds, err := filepath.Glob("/proc/self/fd/*")
	if err != nil {
		return err
	}
	for _, p := range fds {
		if target, err := os.Readlink(p); err == nil && target == "/dev/fuse" {
			fd, err := strconv.Atoi(filepath.Base(p))
			if err != nil {
				return err
			}
			syscall.CloseOnExec(fd)
		}
	}
	return nil
}
