package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/raftkv/raftkv"
)

const memberDesc = `Show and change the cluster's membership.

  raftkv member list   [--json]
  raftkv member add     ID --peer HOST:PORT [--client HOST:PORT]
  raftkv member promote ID
  raftkv member remove  ID

add makes node ID a learner: it receives the log (a snapshot first) but
does not vote. Start the node first, on an empty data directory, with
'raftkv serve --join'. promote gives a learner a vote once it has caught up
(list shows its lag; a learner far behind is refused). remove takes a
voter or a learner out; a leader that removes itself hands leadership over
once the removal is committed. Each change returns once the leader applied
it. One change at a time: another one in progress is refused.

Replacing a dead node: add a new node (new id, empty data directory) as a
learner, promote it, then remove the dead one.

Exit codes: 0 ok, 1 refused or failed (the message says why; nothing
changed when the cluster refused), 2 usage.
`

// memberMain runs `raftkv member SUBCOMMAND`.
func memberMain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("member", "raftkv member list|add|promote|remove [ID] [flags]", memberDesc, stderr)
	endpoints := endpointsFlag(fs, true)
	timeout := fs.Duration("timeout", defaultTimeout, "give up after this long (connecting included)")
	peer := fs.String("peer", "", "add: the new node's peer (Raft) address, host:port")
	client := fs.String("client", "", "add: the new node's client API address, host:port (optional)")
	asJSON := fs.Bool("json", false, "list: print JSON instead of a table")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		return usageError(fs, stderr, "name a subcommand: list, add, promote or remove")
	}
	sub, rest := pos[0], pos[1:]
	var id uint64
	switch sub {
	case "list":
		if len(rest) > 0 {
			return usageError(fs, stderr, "list takes no arguments, got %q", rest)
		}
	case "add", "promote", "remove":
		if len(rest) != 1 {
			return usageError(fs, stderr, "%s takes one node id", sub)
		}
		var err error
		if id, err = strconv.ParseUint(rest[0], 10, 64); err != nil || id == 0 {
			return usageError(fs, stderr, "node id %q: want a positive integer", rest[0])
		}
		if sub == "add" && *peer == "" {
			return usageError(fs, stderr, "add needs --peer HOST:PORT, where the new node's Raft transport listens")
		}
	default:
		return usageError(fs, stderr, "unknown subcommand %q: want list, add, promote or remove", sub)
	}
	eps, code := clientTarget(fs, stderr, *endpoints, *timeout)
	if eps == nil {
		return code
	}
	ctx, cancel, c := dial("member", eps, *timeout, stderr)
	if c == nil {
		return exitFailure
	}
	defer cancel()
	defer c.Close()
	var err error
	switch sub {
	case "list":
		return listMembers(ctx, c, *asJSON, stdout, stderr)
	case "add":
		err = c.AddLearner(ctx, id, *peer, *client)
	case "promote":
		err = c.PromoteLearner(ctx, id)
	case "remove":
		err = c.RemoveMember(ctx, id)
	}
	if err != nil {
		fmt.Fprintf(stderr, "raftkv member %s %d: %v\n", sub, id, err)
		if errors.Is(err, raftkv.ErrOutcomeUnknown) {
			fmt.Fprintln(stderr, "(the change may have been made; run 'raftkv member list')")
		}
		return exitFailure
	}
	fmt.Fprintf(stdout, "member %s %d: done\n", sub, id)
	return exitOK
}

func listMembers(ctx context.Context, c *raftkv.Client, asJSON bool, stdout, stderr io.Writer) int {
	ms, err := c.Members(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv member list: %v\n", err)
		return exitFailure
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if ms == nil {
			ms = []raftkv.Member{}
		}
		if err := enc.Encode(ms); err != nil {
			fmt.Fprintf(stderr, "raftkv member list: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROLE\tMATCH\tLAG\tPEER\tCLIENT")
	for _, m := range ms {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%s\t%s\n", m.ID, m.Role, m.Match, m.Lag, m.PeerAddress, m.ClientAddress)
	}
	if err := tw.Flush(); err != nil {
		fmt.Fprintf(stderr, "raftkv member list: %v\n", err)
		return exitFailure
	}
	return exitOK
}
