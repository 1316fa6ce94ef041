//go:build linux

package powerloss_test

import "github.com/raftkv/raftkv/internal/inspect"

// nodeState is what one stopped node holds on disk (see internal/inspect,
// the one place outside persist and kvstate that knows a node's layout).
type nodeState = inspect.Node

// readNodeState reads a stopped node's stored state from its data
// directory dir, read-only, keeping every value's bytes.
func readNodeState(dir string) (nodeState, error) { return inspect.Read(dir, nil) }
