package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/raftkv/raftkv"
)

// transferResult is transfer-leader's --json output.
type transferResult struct {
	// To is the node asked for; 0 when the leader chose.
	To uint64 `json:"to"`
	// Leader and Term are the leader the cluster reported right after the
	// transfer, and its term (0 when no node answered as leader).
	Leader uint64 `json:"leader"`
	Term   uint64 `json:"term"`
}

// transferMain asks the leader to hand leadership over and reports who
// leads afterwards.
func transferMain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("transfer-leader", "raftkv transfer-leader [flags]",
		"Ask the leader to hand leadership to node --to, and wait until it has seen\n"+
			"that node lead. Without --to (or with 0) the leader picks the node that\n"+
			"holds most of its log among those it heard from in the last election\n"+
			"timeout. Writes pause for the transfer (at most an election timeout).\n"+
			"Prints the leader and term the cluster reports afterwards; --json prints\n"+
			"an object with the fields to, leader and term instead.\n"+
			"Exit codes: 0 ok, 1 failure (not a voter, the leader itself, another\n"+
			"transfer under way, the target not seen taking over, cluster unreachable),\n"+
			"2 usage.\n", stderr)
	endpoints := endpointsFlag(fs, true)
	timeout := fs.Duration("timeout", defaultTimeout, "give up after this long (connecting included)")
	to := fs.Uint64("to", 0, "id of the node to hand leadership to; 0 lets the leader choose")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(fs, stderr, "unexpected arguments: %q (name the node with --to ID)", pos)
	}
	eps, code := clientTarget(fs, stderr, *endpoints, *timeout)
	if eps == nil {
		return code
	}
	ctx, cancel, c := dial("transfer-leader", eps, *timeout, stderr)
	if c == nil {
		return exitFailure
	}
	defer cancel()
	defer c.Close()
	if err := c.TransferLeadership(ctx, *to); err != nil {
		fmt.Fprintf(stderr, "raftkv transfer-leader: %v\n", err)
		if errors.Is(err, raftkv.ErrTransferFailed) {
			fmt.Fprintln(stderr, "(leadership may have moved anyway; run 'raftkv status' to see who leads)")
		}
		return exitFailure
	}
	res := transferResult{To: *to}
	if nodes, err := c.Status(ctx); err == nil {
		for _, n := range nodes {
			if n.Reachable && n.Role == "leader" && n.Term >= res.Term {
				res.Leader, res.Term = n.ID, n.Term
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(stderr, "raftkv transfer-leader: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	if res.Leader == 0 {
		fmt.Fprintln(stdout, "leadership transferred; no node reported itself leader just after")
		return exitOK
	}
	fmt.Fprintf(stdout, "node %d leads (term %d)\n", res.Leader, res.Term)
	return exitOK
}
