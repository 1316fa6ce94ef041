package actors

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/raftkv/raftkv/persist"
)

func TestCheckIdentityRecordsAndChecks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1")
	if err := checkIdentity(dir, "c", 1); err != nil {
		t.Fatalf("first start: %v", err)
	}
	if err := checkIdentity(dir, "c", 1); err != nil {
		t.Fatalf("same node again: %v", err)
	}
	if err := checkIdentity(dir, "c", 2); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("another node's directory: %v, want ErrWrongCluster", err)
	}
	if err := checkIdentity(dir, "other", 1); !errors.Is(err, ErrWrongCluster) {
		t.Fatalf("another cluster's directory: %v, want ErrWrongCluster", err)
	}
}

// A crash while the identity is being written leaves at most its temporary
// file (persist.WriteFileAtomic): the next start must treat the directory
// as new, not refuse it forever as holding unknown data.
func TestCheckIdentityAfterTornWrite(t *testing.T) {
	dir := t.TempDir()
	torn := filepath.Join(dir, "."+identityFile+".tmp-123")
	if err := os.WriteFile(torn, []byte("clus"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkIdentity(dir, "c", 1); err != nil {
		t.Fatalf("start after a torn identity write: %v", err)
	}
	if _, err := os.Stat(torn); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the torn temporary file is still there: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil || string(got) != "cluster=c\nnode=1\n" {
		t.Fatalf("identity = %q, %v", got, err)
	}
}

func TestCheckIdentityRefusesOldLayout(t *testing.T) {
	dir := t.TempDir()
	if err := checkIdentity(dir, "c", 1); err != nil {
		t.Fatal(err)
	}
	// Earlier versions kept one Badger database at the top of the directory.
	if err := os.WriteFile(filepath.Join(dir, "MANIFEST"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkIdentity(dir, "c", 1); !errors.Is(err, persist.ErrOldLayout) {
		t.Fatalf("old layout: %v, want persist.ErrOldLayout", err)
	}
}
