package persist

import (
	"errors"
	"fmt"
	"github.com/dgraph-io/badger/v4"
	"github.com/raftkv/raftkv/raftlogic"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteFileAtomicReplacesWholeFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := MkdirDurable(dir); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "f")
	for _, want := range []string{"first", "second, longer"} {
		if err := WriteFileAtomic(path, []byte(want)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Fatalf("read %q, %v; want %q", got, err, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file (no temporary left)", len(entries))
	}
}

func TestWriteFileAtomicFailureLeavesOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFileAtomic(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	// A directory in the way makes the rename fail after the temporary file
	// was written.
	blocked := filepath.Join(dir, "d")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(blocked, []byte("new")); err == nil {
		t.Fatal("replacing a non-empty directory succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Fatalf("directory holds %d entries after a failed write, want 2 (no temporary left)", len(entries))
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Fatalf("old file now %q", got)
	}
}

// RemoveFileDurable removes the file, and a file already gone is not an
// error (a retry after a crash between the removal and the sync).
func TestRemoveFileDurable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := WriteFileAtomic(path, []byte("x")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := RemoveFileDurable(path); err != nil {
			t.Fatalf("remove %d: %v", i, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("after remove %d: stat %v, want not exist", i, err)
		}
	}
	if err := RemoveFileDurable(filepath.Join(dir, "missing-dir", "f")); err == nil {
		t.Fatal("removing in a missing directory succeeded: the directory sync was skipped")
	}
}

func TestCheckLayout(t *testing.T) {
	dir := t.TempDir()
	if err := CheckLayout(dir); err != nil {
		t.Fatalf("empty directory: %v", err)
	}
	db, err := OpenDB(dir, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := CheckLayout(dir); err == nil {
		t.Fatal("a Badger database at the top of a data directory was accepted")
	}
}

func TestCheckSpace(t *testing.T) {
	dir := t.TempDir()
	if err := CheckSpace(dir, 0, 1<<62); err != nil {
		t.Fatalf("reserve 0 must turn the check off: %v", err)
	}
	if err := CheckSpace(dir, 1, 0); err != nil {
		t.Fatalf("a 1-byte reserve on a working filesystem: %v", err)
	}
	// No filesystem here has an exabyte free.
	err := CheckSpace(dir, 1<<60, 0)
	if !errors.Is(err, ErrDiskFull) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("CheckSpace = %v, want ErrDiskFull naming %s", err, dir)
	}
}

// A Save that would leave less than the reserve free writes nothing and
// leaves the store usable, so the node can start again once space is freed.
func TestSaveRefusesBelowDiskReserve(t *testing.T) {
	dir := t.TempDir()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	db, err := OpenDB(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	full := NewLogStore(db, quiet, WithDiskReserve(1<<60))
	if _, err := full.Load(); err != nil {
		t.Fatal(err)
	}
	ents := []raftlogic.Entry{{Index: 1, Term: 1, Data: []byte("x")}}
	if err := full.Save(raftlogic.HardState{Term: 1, Commit: 1}, ents, raftlogic.SnapshotMeta{}); !errors.Is(err, ErrDiskFull) {
		t.Fatalf("Save = %v, want ErrDiskFull", err)
	}
	if full.lastIndex() != 0 {
		t.Fatalf("last index %d after a refused Save", full.lastIndex())
	}
	ok := NewLogStore(db, quiet)
	st, err := ok.Load()
	if err != nil || len(st.Entries) != 0 || st.HardState.Term != 0 {
		t.Fatalf("stored after a refused Save: %+v, %v", st, err)
	}
	if err := ok.Save(raftlogic.HardState{Term: 1, Commit: 1}, ents, raftlogic.SnapshotMeta{}); err != nil {
		t.Fatalf("Save with room: %v", err)
	}
}

// Badger creates a log file and sizes it in two steps; a crash in between
// leaves an empty file that Badger itself refuses to open. OpenDB must
// start anyway (the file held nothing).
func TestOpenDBAfterCrashLeftEmptyFiles(t *testing.T) {
	dir := t.TempDir()
	quiet := WithLogger(slog.New(slog.DiscardHandler))
	db, err := OpenDB(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"00009.mem", "000009.vlog"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The control: Badger alone cannot open it.
	if raw, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil)); err == nil {
		raw.Close()
		t.Fatal("badger.Open accepted the empty files; the test proves nothing")
	}
	db, err = OpenDB(dir, quiet)
	if err != nil {
		t.Fatalf("OpenDB after a crash left empty files: %v", err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("k"))
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if string(v) != "v" {
				return fmt.Errorf("value %q", v)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatalf("data after reopening: %v", err)
	}
}
