// Package cluster holds the process-level fault suite of RaftKV: its tests
// build the raftkv binary, run real `raftkv serve` processes on loopback,
// inject faults (SIGKILL, SIGSTOP, network partitions) while clients run a
// concurrent workload, and check the outcome: the history is linearizable,
// every acknowledged write survives, and all replicas hold the same state.
//
// It has no non-test code. Run it with
//
//	go test ./test/cluster/                      # bounded default subset
//	go test ./test/cluster/ -cluster.full -v     # every scenario, 5 nodes
//	go test ./test/cluster/ -cluster.seed=N      # replay a seed
//
// See faults_test.go for the scenarios and what each run checks.
//
// It must never send traffic anywhere but 127.0.0.1, leave a process or an
// iptables rule behind, or run unbounded: every loop is bounded in count
// and time, and cleanup heals the network and kills every node.
package cluster
