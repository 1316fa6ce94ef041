package persist

// Accessors only tests need: the node keeps the log's bounds in raftlogic.

// firstIndex returns the index of the first entry of the log, one past the
// snapshot's (it may not exist yet: then lastIndex is one less).
func (s *LogStore) firstIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap.Index + 1
}

// lastIndex returns the index of the last entry of the log, or the
// snapshot's index if the log after it is empty.
func (s *LogStore) lastIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}
