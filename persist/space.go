package persist

import (
	"errors"
	"fmt"
)

// ErrDiskFull reports that a write would leave less free space on the
// filesystem of a node's data than its reserve. Nothing was written. The
// node stops (fail-stop) rather than let Badger run out of space: Badger
// writes through memory-mapped files, and a write into a mapping the
// filesystem cannot back raises SIGBUS, which kills the whole process (in
// embedded mode, every node and the application with it).
var ErrDiskFull = errors.New("persist: disk space below the reserve")

// CheckSpace returns an error wrapping ErrDiskFull, naming dir, the free
// space and the reserve, if writing need more bytes under dir would leave
// less than reserve bytes free on its filesystem. A reserve of 0 turns the
// check off. Where free space cannot be read (an unsupported platform), it
// checks nothing.
func CheckSpace(dir string, reserve, need int64) error {
	if reserve <= 0 {
		return nil
	}
	free, ok, err := freeBytes(dir)
	if err != nil {
		return fmt.Errorf("persist: free space of %s: %w", dir, err)
	}
	if !ok || free-need >= reserve {
		return nil
	}
	return fmt.Errorf("%w: %s has %s free; writing %s more would leave less than the reserve of %s (diskReserve)",
		ErrDiskFull, dir, mib(free), mib(need), mib(reserve))
}

// DiskFree returns the bytes free on the filesystem holding dir; ok is
// false where the platform does not tell.
func DiskFree(dir string) (free int64, ok bool, err error) { return freeBytes(dir) }

// mib formats a byte count for people.
func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%d bytes", n)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
