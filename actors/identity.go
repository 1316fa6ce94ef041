package actors

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
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
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("actors: read %s: %w", path, err)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%w: %s holds data but no %s file; refusing to adopt it", ErrWrongCluster, dir, identityFile)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("actors: create data directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("actors: create %s: %w", path, err)
	}
	if _, err := f.WriteString(want); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("actors: write %s: %w", path, err)
	}
	return nil
}
