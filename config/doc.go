// Package config loads and validates the configuration of a RaftKV cluster:
// which nodes exist, where they listen, where they keep their data, and the
// Raft timing, compaction and size limits they share.
//
// The file format is the config.yaml of RaftKV's ancestor, extended. Its
// `mode` key is required and chooses between two behaviours:
//
//   - mode: default ignores every other key and yields Default(). The
//     ancestor shipped files that said "mode: default" next to concrete
//     values, so such files stay valid. The other keys must still be known
//     and well typed (a typo is a typo in either mode), but their values are
//     not checked and not used.
//   - mode: config reads the other keys; a key left out keeps its default.
//
// Nodes are either derived (serversNum nodes with ids 1..serversNum, node i
// listening on address:port+i-1, serving clients on clientPort+i-1 and
// keeping its data under persistPath/node<i>) or listed explicitly under
// `servers:` for clusters spread over several hosts. See Config for every key.
//
// Every error about the configuration names the YAML key it is about (and
// the line, when it comes from a file; an unknown key gets the closest known
// one as a suggestion), because the YAML key is what an operator has to go
// and edit. Errors reading the file wrap the os error, so
// errors.Is(err, fs.ErrNotExist) works.
//
// config is the one home of the defaults an operator can change (Default,
// defaults.go); the packages below it take their values from a Config and
// keep no copies. Sizes derived from maxValueSize live in internal/limits.
// Files: config.go (Config and its accessors), defaults.go, load.go (the
// schema and the two modes), yamlcheck.go (the schema-independent YAML
// checker: key paths, lines, "did you mean"), validate.go.
//
// config is a part of RaftKV's implementation and carries no compatibility
// promise: it exports only what the other packages of the module use, and
// applications import the root package raftkv instead.
//
// What this package must never do: no I/O other than reading the one file
// named to Load or LoadOptional (it does not create persistPath, resolve host
// names or probe ports, so loading a configuration has no side effects and
// can be done from tests and tools), no package-level mutable state (two
// clusters in one process, as tests run them, must not share anything), and
// no panics on any input (a configuration file is operator-written text and
// a typo must produce an error, not a crashed node).
package config
