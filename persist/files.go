package persist

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// A node's data directory holds its identity file and a directory of
// snapshot images in transit (see package actors), and two Badger
// databases, one per subdirectory.
const (
	logDirName   = "log"
	stateDirName = "state"
)

// LogDir is where a node whose data directory is dataDir keeps its Raft log.
func LogDir(dataDir string) string { return filepath.Join(dataDir, logDirName) }

// StateDir is where a node whose data directory is dataDir keeps its state
// machine.
func StateDir(dataDir string) string { return filepath.Join(dataDir, stateDirName) }

// ErrOldLayout reports a data directory written by an earlier RaftKV, which
// kept the log and the state machine in one Badger database at the top of
// the directory. This version does not read it.
var ErrOldLayout = errors.New("persist: data directory has the layout of an earlier version")

// CheckLayout refuses a data directory that holds a Badger database at its
// top level (the single-database layout of earlier versions), so that it is
// reported instead of silently started empty beside the old data.
func CheckLayout(dataDir string) error {
	_, err := os.Stat(filepath.Join(dataDir, "MANIFEST"))
	switch {
	case err == nil:
		return fmt.Errorf("%w: %s holds one Badger database for log and state; this version keeps them in %s/ and %s/ and cannot read it (start the node on an empty directory: it catches up from the cluster)",
			ErrOldLayout, dataDir, logDirName, stateDirName)
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return fmt.Errorf("persist: inspect %s: %w", dataDir, err)
}

// MkdirDurable creates dir and any missing parents, and syncs each parent
// whose entry it added, so that after a power cut the directory exists if
// anything written in it does.
func MkdirDurable(dir string) error {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirDurable(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("persist: create %s: %w", dir, err)
	}
	return syncDir(parent)
}

// syncDir makes the entries of dir (files created, renamed or removed in
// it) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("persist: sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("persist: sync directory %s: %w", dir, err)
	}
	return nil
}

// WriteFileAtomic replaces path with data so that a crash or power cut at
// any point leaves either the old file or the whole new one, never a torn
// or empty file: it writes a temporary file beside path, syncs it, renames
// it over path and syncs the directory.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("persist: write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("persist: write %s: %w", path, err)
	}
	return syncDir(dir)
}

// RemoveFileDurable removes path, if it is there, and syncs its directory,
// so that after a power cut the file does not come back.
func RemoveFileDurable(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("persist: remove %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}
