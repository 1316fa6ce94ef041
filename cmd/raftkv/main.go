// Command raftkv runs a RaftKV node and talks to a cluster.
//
//	raftkv serve  --config FILE --id N [--data DIR]
//	raftkv get    --endpoints HOST:PORT,... [--newline] KEY
//	raftkv put    --endpoints HOST:PORT,... KEY [VALUE]   (VALUE from stdin when omitted)
//	raftkv update --endpoints HOST:PORT,... KEY [VALUE]   (VALUE from stdin when omitted)
//	raftkv remove --endpoints HOST:PORT,... KEY
//	raftkv status --endpoints HOST:PORT,... [--json]
//	raftkv transfer-leader --endpoints HOST:PORT,... [--to ID] [--json]
//	raftkv member list|add|promote|remove [ID] --endpoints HOST:PORT,... [--peer HOST:PORT] [--client HOST:PORT] [--json]
//	raftkv bench  [--endpoints HOST:PORT,...] [--workload put|get|mixed] [--clients N]
//	              [--duration D] [--keys K] [--value-size B] [--json]
//
// The client commands take --endpoints from $RAFTKV_ENDPOINTS when the flag
// is absent (except bench, which without --endpoints benchmarks a fresh
// embedded cluster). get writes the value alone to stdout, with no newline,
// so `raftkv get k > file` reproduces the stored bytes; everything else goes
// to stderr.
//
// Exit codes: 0 success, 1 failure, 2 usage or configuration error, 3 key
// not found (get, update, remove).
package main

import (
	"fmt"
	"io"
	"os"
)

// Exit codes scripts can rely on.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2
	exitNotFound = 3
)

const usage = `usage: raftkv <command> [flags]

commands:
  serve   run one node of a cluster: raftkv serve --config FILE --id N [--data DIR]
  get     print a key's value (raw bytes, no newline added): raftkv get KEY
  put     set a key: raftkv put KEY [VALUE]   (VALUE from stdin when omitted)
  update  overwrite an existing key: raftkv update KEY [VALUE]
  remove  delete a key: raftkv remove KEY
  status  show every node of the cluster: raftkv status [--json]
  transfer-leader
          hand leadership to a node: raftkv transfer-leader [--to ID] [--json]
          (without --to the leader picks the most up-to-date node)
  member  show or change the members: raftkv member list [--json],
          member add ID --peer HOST:PORT [--client HOST:PORT],
          member promote ID, member remove ID
  bench   measure throughput and latency: raftkv bench [--workload put|get|mixed]
          (a fresh embedded 3-node cluster unless --endpoints is given)

get, put, update, remove, status, transfer-leader and member need --endpoints
host:port,... (the nodes' client addresses) or $RAFTKV_ENDPOINTS; each
takes --timeout (default 5s).

Exit codes: 0 ok, 1 failure, 2 usage or configuration error, 3 key not found.
Run 'raftkv <command> -h' for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one command line and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if cmd, ok := kvCommands[args[0]]; ok {
		return kvMain(cmd, args[1:], stdin, stdout, stderr)
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "status":
		return statusMain(args[1:], stdout, stderr)
	case "transfer-leader":
		return transferMain(args[1:], stdout, stderr)
	case "member":
		return memberMain(args[1:], stdout, stderr)
	case "bench":
		return benchMain(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "raftkv: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
