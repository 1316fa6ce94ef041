package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/raftkv/raftkv"
)

// nodeRow is one node in status output: its status (whose JSON names are
// stable) and the size of its log.
type nodeRow struct {
	raftkv.NodeStatus
	LogSize uint64 `json:"log_size"`
}

// statusMain prints the state of every node of the cluster, as the node
// that answers sees it.
func statusMain(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("status", "raftkv status [flags]",
		"Print every node of the cluster: id, peer and client addresses, role, term,\n"+
			"the leader it follows, commit and applied indexes, log size (entries\n"+
			"last-first+1), snapshot index, disk space used by its data directory and\n"+
			"free on its filesystem, and whether it answered. Unreachable nodes show\n"+
			"'-'. --json prints an array of objects instead, one per node, with the\n"+
			"fields id, peer_address, client_address, reachable, role, term, leader,\n"+
			"commit, applied, first_index, last_index, log_size, snapshot_index,\n"+
			"disk_bytes and disk_free_bytes, and lsm_bytes, vlog_bytes, leader_changes\n"+
			"and proposals.\n", stderr)
	endpoints := endpointsFlag(fs, true)
	timeout := fs.Duration("timeout", defaultTimeout, "give up after this long (connecting included)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(fs, stderr, "unexpected arguments: %q", pos)
	}
	eps, code := clientTarget(fs, stderr, *endpoints, *timeout)
	if eps == nil {
		return code
	}
	ctx, cancel, c := dial("status", eps, *timeout, stderr)
	if c == nil {
		return exitFailure
	}
	defer cancel()
	defer c.Close()
	nodes, err := c.Status(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv status: %v\n", err)
		return exitFailure
	}
	rows := make([]nodeRow, 0, len(nodes))
	for _, n := range nodes {
		rows = append(rows, nodeRow{NodeStatus: n, LogSize: n.LogEntries()})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rows); err != nil {
			fmt.Fprintf(stderr, "raftkv status: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	if err := printStatusTable(stdout, rows); err != nil {
		fmt.Fprintf(stderr, "raftkv status: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func printStatusTable(w io.Writer, rows []nodeRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPEER ADDRESS\tCLIENT ADDRESS\tROLE\tTERM\tLEADER\tCOMMIT\tAPPLIED\tLOG SIZE\tSNAPSHOT\tDISK\tFREE\tREACHABLE")
	for _, r := range rows {
		client := r.ClientAddress
		if client == "" {
			client = "-"
		}
		if !r.Reachable {
			fmt.Fprintf(tw, "%d\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\tno\n", r.ID, r.Address, client)
			continue
		}
		leader := "-"
		if r.Leader != 0 {
			leader = strconv.FormatUint(r.Leader, 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\tyes\n",
			r.ID, r.Address, client, r.Role, r.Term, leader, r.Commit, r.Applied, r.LogSize, r.SnapshotIndex,
			humanBytes(r.DiskBytes), humanBytes(r.DiskFreeBytes))
	}
	return tw.Flush()
}

// humanBytes prints a byte count in the largest binary unit that keeps it
// at or above 1.
func humanBytes(n uint64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%dB", n)
	}
	v, i := float64(n)/1024, 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.1f%ciB", v, units[i])
}
