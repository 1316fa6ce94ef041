// Package kvmodel is the specification RaftKV's linearizability tests check
// histories against: one register per key, for porcupine. It is shared by
// the in-process test (the root package) and the process-level suite
// (test/cluster), so both check against the same definition. It must
// never depend on RaftKV itself: it describes what the database should do,
// not how.
package kvmodel
