// Command raftkv runs a RaftKV node and talks to a cluster.
//
//	raftkv serve --config FILE --id N [--data DIR]
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
	switch args[0] {
	case "serve":
		return serve(args[1:], stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "raftkv: unknown command %q\n\n%s", args[0], usage)
	return exitUsage
}
