//go:build linux

package powerloss_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Tests of the harness itself: a power-loss test that cannot see an
// unsynced write would pass on any code.

// TestCrashStates checks crash-state reconstruction on a hand-made
// operation log: what precedes the last barrier always survives, what
// follows it survives or not as the crash point says, and tearing happens
// only at unit boundaries.
func TestCrashStates(t *testing.T) {
	dir := t.TempDir()
	rec, err := newRecorder(dir, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer rec.close()
	fill := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	for _, step := range []func() error{
		func() error { return rec.writeAt(fill('a', 4096), 0) },
		func() error { rec.barrier(); return nil },
		func() error { return rec.writeAt(fill('b', 4*4096), 8192) },
		func() error { return rec.writeAt(fill('c', 4096), 0) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	r := rec.recording()
	buf := make([]byte, 4096)
	state := func(cp crashPoint) []byte {
		t.Helper()
		path := filepath.Join(dir, "state.img")
		if _, err := r.materialize(path, cp, buf); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 1<<20 {
			t.Fatalf("state has %d bytes, want the device's %d", len(b), 1<<20)
		}
		return b
	}
	zero := func(n int) []byte { return make([]byte, n) }
	for _, c := range []struct {
		cp     crashPoint
		at0, b []byte
	}{
		{crashPoint{pos: 1, keep: 0}, zero(4096), zero(4 * 4096)},                  // A not yet flushed
		{crashPoint{pos: 1, keep: 1}, fill('a', 4096), zero(4 * 4096)},             // ... but it may have been written
		{crashPoint{pos: 2, keep: 0}, fill('a', 4096), zero(4 * 4096)},             // flushed: always there
		{crashPoint{pos: 4, keep: 0}, fill('a', 4096), zero(4 * 4096)},             // B and C lost
		{crashPoint{pos: 4, keep: 1}, fill('c', 4096), fill('b', 4*4096)},          // B and C written
		{crashPoint{pos: 3, keep: 1}, fill('a', 4096), fill('b', 4*4096)},          // C not yet issued
		{crashPoint{pos: 4, keep: 1, tear: 0}, fill('c', 4096), fill('b', 4*4096)}, // no tearing asked
	} {
		s := state(c.cp)
		if !bytes.Equal(s[:4096], c.at0) || !bytes.Equal(s[8192:8192+4*4096], c.b) {
			t.Errorf("state %v: block 0 starts %q, B's blocks start %q", c.cp, s[:1], s[8192:8193])
		}
	}
	// Torn writes: each 4 KiB unit is whole or absent, and over many seeds
	// B is seen both partly kept and partly lost.
	partial := false
	for seed := range uint64(50) {
		s := state(crashPoint{pos: 4, tear: 1, seed: seed})
		kept := 0
		for u := range 4 {
			unit := s[8192+u*4096 : 8192+(u+1)*4096]
			switch {
			case bytes.Equal(unit, fill('b', 4096)):
				kept++
			case !bytes.Equal(unit, zero(4096)):
				t.Fatalf("seed %d: unit %d of a torn write is itself torn", seed, u)
			}
		}
		partial = partial || (kept > 0 && kept < 4)
	}
	if !partial {
		t.Error("50 torn states never kept part of a write")
	}
}

// TestHistoryCheck checks the rule for what a key may hold after a crash.
func TestHistoryCheck(t *testing.T) {
	h := newHistory()
	for _, l := range []struct {
		line string
		pos  int
	}{
		{"DO PUT k v1 100 .", 1}, {"ACK PUT k .", 10},
		{"DO PUT r r1 100 .", 2}, {"ACK PUT r .", 15},
		{"DO PUT k v2 200 .", 11}, {"ACK PUT k .", 20},
		{"DO DEL r .", 21}, {"ACK DEL r .", 30},
		{"DO PUT j x1 50 .", 5}, // never acknowledged
		{"ACK PUT j", 6},        // torn by the kill: ignored
	} {
		if err := h.add(l.line, l.pos); err != nil {
			t.Fatal(err)
		}
	}
	v1, v2, r1, x1 := valueBytes("v1", 100), valueBytes("v2", 200), valueBytes("r1", 100), valueBytes("x1", 50)
	damaged := bytes.Clone(v2)
	damaged[150] ^= 1
	for _, c := range []struct {
		key   string
		value []byte
		pos   int
		ok    bool
	}{
		{"k", nil, 9, true},       // nothing acknowledged yet
		{"k", v2, 9, true},        // a later put was attempted
		{"k", nil, 10, false},     // v1 acknowledged, and no remove attempted
		{"k", v1, 10, true},       //
		{"k", v1, 20, false},      // v2 acknowledged: v1 is a lost write
		{"k", v2, 25, true},       //
		{"k", damaged, 25, false}, // the right put, damaged
		{"k", r1, 25, false},      // another key's value
		{"r", r1, 20, true},       // the remove may not have happened
		{"r", nil, 20, true},      // or may have
		{"r", r1, 30, false},      // the remove was acknowledged
		{"j", nil, 100, true},     // never acknowledged
		{"j", x1, 100, true},      // but attempted
		{"z", x1, 100, false},     // never written
	} {
		if msg := h.check(c.key, c.value, c.pos); (msg == "") != c.ok {
			t.Errorf("check(%s, %.10q, %d) = %q; want ok=%v", c.key, c.value, c.pos, msg, c.ok)
		}
	}
}

// TestRecorderSeesUnsyncedWrites runs the whole chain (FUSE recorder,
// loop device, ext4) with a child that writes one file with fsync and one
// without, and checks the rebuilt crash states: the fsynced file is there
// even when every write after the last barrier is lost; the other is
// missing even when every write that reached the device is kept (it was
// still in the page cache), and is there once it too was fsynced.
func TestRecorderSeesUnsyncedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: mounts filesystems")
	}
	requireHost(t)
	work := workDir(t, *flagKeep)
	disk := mountDisk(t, work, 64<<20)
	dev, detach := attachLoop(t, disk.path)
	mkfs(t, dev)
	mnt := filepath.Join(work, "mnt")
	umount := mountExt4(t, dev, mnt)
	c := startChild(t, "files", filepath.Join(work, "child.log"), helperDirEnv+"="+mnt)
	marks := map[string]int{}
	for line := range c.lines {
		f := strings.Fields(line)
		if len(f) != 2 || f[1] != "." {
			continue // the test framework's own output
		}
		marks[f[0]] = disk.rec.pos()
		if f[0] == "WRITTEN" {
			// Only now may the child sync the second file: the position
			// just taken must not include that sync.
			if _, err := io.WriteString(c.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.cmd.Wait(); err != nil || len(marks) != 3 {
		t.Fatalf("child: %v, saw %v", err, marks)
	}
	for _, undo := range []func() error{umount, detach, disk.umount} {
		if err := undo(); err != nil {
			t.Fatal(err)
		}
	}
	r := disk.rec.recording()
	buf := make([]byte, 1<<20)
	for _, c := range []struct {
		cp               crashPoint
		synced, unsynced bool
	}{
		{crashPoint{pos: marks["SYNCED"], keep: 0, why: "after the fsync, unsynced writes lost"}, true, false},
		{crashPoint{pos: marks["WRITTEN"], keep: 1, why: "after the plain write, every write kept"}, true, false},
		{crashPoint{pos: marks["SYNCED2"], keep: 0, why: "after the second fsync, unsynced writes lost"}, true, true},
	} {
		img := filepath.Join(work, "state.img")
		if _, err := r.materialize(img, c.cp, buf); err != nil {
			t.Fatal(err)
		}
		sdev, sdetach := attachLoop(t, img)
		smnt := filepath.Join(work, "state")
		sumount := mountExt4(t, sdev, smnt)
		for _, f := range []struct {
			name string
			want bool
		}{{"synced", c.synced}, {"unsynced", c.unsynced}} {
			got, err := os.ReadFile(filepath.Join(smnt, f.name))
			has := err == nil && bytes.Equal(got, fileContent(f.name))
			if has != f.want {
				t.Errorf("crash state %v: file %s present=%v (%d bytes, %v), want %v", c.cp, f.name, has, len(got), err, f.want)
			}
		}
		if err := errors.Join(sumount(), sdetach(), os.Remove(img)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d operations recorded; marks %v", len(r.ops), marks)
}

func fileContent(name string) []byte {
	return bytes.Repeat([]byte(name+"\n"), 300<<10/(len(name)+1))
}

// filesHelper is the child of TestRecorderSeesUnsyncedWrites.
func filesHelper(t *testing.T, dir string) {
	var out emitter
	write := func(name string) *os.File {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(fileContent(name)); err != nil {
			t.Fatal(err)
		}
		return f
	}
	syncFile := func(f *os.File) {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	syncFile(write("synced"))
	out.emit("SYNCED")
	f := write("unsynced")
	out.emit("WRITTEN")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := waitLine(ctx, os.Stdin); err != nil {
		t.Fatal(err)
	}
	syncFile(f)
	out.emit("SYNCED2")
}

// waitLine waits for a line on r.
func waitLine(ctx context.Context, r io.Reader) error {
	done := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		for {
			if _, err := r.Read(b); err != nil {
				done <- err
				return
			}
			if b[0] == '\n' {
				done <- nil
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no go-ahead from the parent: %w", ctx.Err())
	}
}
