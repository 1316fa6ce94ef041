package raftlogic

// Test-only entry points. They are not part of the package's surface: a
// driver starts elections by ticking, and moves leadership with
// TransferLeadership.

// Campaign starts an election now, as if the election timeout had elapsed,
// so a test can choose who campaigns without ticking the clocks.
func (n *Node) Campaign() {
	if n.role != Leader {
		n.hup(false)
	}
}
