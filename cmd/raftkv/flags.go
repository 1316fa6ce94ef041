package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/raftkv/raftkv"
)

// endpointsEnv names the environment variable that supplies --endpoints to
// get, put, update, remove, status, transfer-leader and member when the
// flag is not given.
const endpointsEnv = "RAFTKV_ENDPOINTS"

// newFlagSet returns a flag set that reports to stderr and prints synopsis
// and description, then the flags, for -h and on errors.
func newFlagSet(name, synopsis, description string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprintf(out, "usage: %s\n\n%s\nflags:\n", synopsis, description)
		fs.PrintDefaults()
	}
	return fs
}

// parseArgs parses flags placed before, between or after the positional
// arguments, which it returns; everything after "--" is positional, so a key
// or value that starts with "-" goes after "--". ok is false when parsing
// failed; code is then the exit code: 0 after -h (help was printed), 2
// otherwise (the flag package printed the problem and the usage).
func parseArgs(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitUsage, false
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), 0, true
		}
		if len(rest) == 0 {
			return pos, 0, true
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError reports a usage problem of command name and returns exitUsage.
func usageError(fs *flag.FlagSet, stderr io.Writer, format string, a ...any) int {
	fmt.Fprintf(stderr, "raftkv %s: %s\n\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return exitUsage
}

// endpointsFlag registers --endpoints, defaulting to $RAFTKV_ENDPOINTS when
// fromEnv is set.
func endpointsFlag(fs *flag.FlagSet, fromEnv bool) *string {
	def, help := "", "comma-separated client addresses (host:port) of the cluster's nodes"
	if fromEnv {
		def = os.Getenv(endpointsEnv)
		help += "; defaults to $" + endpointsEnv
	}
	return fs.String("endpoints", def, help)
}

// clientTarget checks the flags every client command shares and returns
// the endpoints, or the exit code of a usage error.
func clientTarget(fs *flag.FlagSet, stderr io.Writer, endpoints string, timeout time.Duration) ([]string, int) {
	eps, err := splitEndpoints(endpoints)
	if err != nil {
		return nil, usageError(fs, stderr, "--endpoints: %v", err)
	}
	if len(eps) == 0 {
		return nil, usageError(fs, stderr, "no endpoints: give --endpoints host:port,... or set $%s", endpointsEnv)
	}
	if timeout <= 0 {
		return nil, usageError(fs, stderr, "--timeout must be positive, got %v", timeout)
	}
	return eps, exitOK
}

// dial connects a client command to the cluster within timeout, whose
// context the command's calls share; on failure it reports why (as command
// name) and returns nil. The caller cancels the context and closes the
// client.
func dial(name string, eps []string, timeout time.Duration, stderr io.Writer) (context.Context, context.CancelFunc, *raftkv.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	c, err := raftkv.Dial(ctx, eps...)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv %s: cannot reach the cluster within %v: %v\n", name, timeout, err)
		cancel()
		return nil, nil, nil
	}
	return ctx, cancel, c
}

// splitEndpoints parses a comma-separated list of host:port addresses,
// ignoring blanks.
func splitEndpoints(s string) ([]string, error) {
	var eps []string
	for _, ep := range strings.Split(s, ",") {
		ep = strings.TrimSpace(ep)
		if ep == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(ep); err != nil || port == "" {
			return nil, fmt.Errorf("endpoint %q is not host:port", ep)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok || f == nil {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
