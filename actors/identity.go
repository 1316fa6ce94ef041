package actors

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/raftkv/raftkv/persist"
)

// identityFile names the file that records which node of which cluster a
// data directory belongs to. Starting node 2 on node 1's data, or a node of
// cluster "a" on data of cluster "b", would corrupt both clusters' history;
// the check makes it a clear error instead.
const identityFile = "RAFTKV_NODE"

// checkIdentity records the node's identity in a new data directory, or
// checks the one recorded.
func checkIdentity(dir, clusterID string, id uint64) error {
	want := fmt.Sprintf("cluster=%s\nnode=%d\n", clusterID, id)
	path := filepath.Join(dir, identityFile)
	got, err := os.ReadFile(path)
	switch {
	case err == nil:
		if string(got) != want {
			return fmt.Errorf("%w: %s belongs to %s, not to node %d of cluster %q",
				ErrWrongCluster, dir, strings.ReplaceAll(strings.TrimSpace(string(got)), "\n", " "), id, clusterID)
		}
		return persist.CheckLayout(dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("actors: read %s: %w", path, err)
	}
	if entries, err := os.ReadDir(dir); err == nil {
		for _, e := range entries {
			// A crash while the identity was being written leaves only its
			// temporary file (see persist.WriteFileAtomic): no data yet.
			if !strings.HasPrefix(e.Name(), "."+identityFile+".tmp-") {
				return fmt.Errorf("%w: %s holds data but no %s file; refusing to adopt it", ErrWrongCluster, dir, identityFile)
			}
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("actors: remove a torn identity file: %w", err)
			}
		}
	}
	if err := persist.MkdirDurable(dir); err != nil {
		return fmt.Errorf("actors: create data directory: %w", err)
	}
	if err := persist.WriteFileAtomic(path, []byte(want)); err != nil {
		return fmt.Errorf("actors: record node identity: %w", err)
	}
	return nil
}

// HasData reports whether dir holds a node's data (its identity file is
// there): a node started on it resumes from it rather than starting new.
func HasData(dir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dir, identityFile))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("actors: %w", err)
}
