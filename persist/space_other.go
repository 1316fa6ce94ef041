//go:build !unix

package persist

import "io/fs"

// freeBytes cannot read free space on this platform; the reserve is then
// not enforced.
func freeBytes(string) (int64, bool, error) { return 0, false, nil }

// allocated is the size of a file; this platform does not say how much of
// it is allocated.
func allocated(info fs.FileInfo) int64 { return info.Size() }
