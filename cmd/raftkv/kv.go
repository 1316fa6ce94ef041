package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/config"
)

// defaultTimeout bounds a client command: connecting and the operation.
const defaultTimeout = 5 * time.Second

// kvCommand describes one of get, put, update and remove.
type kvCommand struct {
	name      string
	withValue bool // put, update: KEY [VALUE]
	summary   string
}

var kvCommands = map[string]kvCommand{
	"get":    {name: "get", summary: "Print KEY's value to stdout, byte for byte: no newline is added (see --newline).\nExit code 3 and nothing on stdout when KEY does not exist."},
	"put":    {name: "put", withValue: true, summary: "Set KEY to VALUE, creating or overwriting it."},
	"update": {name: "update", withValue: true, summary: "Overwrite KEY with VALUE only if KEY exists; exit code 3 (and nothing\nwritten) when it does not."},
	"remove": {name: "remove", summary: "Delete KEY; exit code 3 when it does not exist."},
}

// kvMain runs get, put, update or remove. Nothing but get's value goes to
// stdout; errors go to stderr.
func kvMain(cmd kvCommand, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	synopsis := "raftkv " + cmd.name + " [flags] KEY"
	desc := cmd.summary + "\n"
	if cmd.withValue {
		synopsis += " [VALUE]"
		desc += "Without VALUE the value is all of stdin, read to EOF (binary-safe), so\n" +
			"'raftkv " + cmd.name + " k < file' stores the file exactly.\n"
	}
	desc += "Put flags anywhere; a KEY or VALUE that starts with '-' goes after '--'.\n" +
		"Exit codes: 0 ok, 1 failure (cluster unreachable, value refused), 2 usage"
	if cmd.name != "put" {
		desc += ", 3 not found"
	}
	desc += ".\n"
	fs := newFlagSet(cmd.name, synopsis, desc, stderr)
	endpoints := endpointsFlag(fs, true)
	timeout := fs.Duration("timeout", defaultTimeout, "give up after this long (connecting included)")
	var newline *bool
	if cmd.name == "get" {
		newline = fs.Bool("newline", false, "print a newline after the value (for terminals; breaks byte-exact round trips)")
	}
	pos, code, ok := parseArgs(fs, args)
	if !ok {
		return code
	}
	maxArgs := 1
	if cmd.withValue {
		maxArgs = 2
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, stderr, "missing KEY")
	case len(pos) > maxArgs:
		return usageError(fs, stderr, "too many arguments: %q", pos[maxArgs:])
	}
	key := pos[0]
	if key == "" {
		return usageError(fs, stderr, "the key is empty; keys are 1 to %d bytes", raftkv.MaxKeySize)
	}
	if len(key) > raftkv.MaxKeySize {
		return usageError(fs, stderr, "the key is %d bytes; keys are at most %d bytes", len(key), raftkv.MaxKeySize)
	}
	eps, code := clientTarget(fs, stderr, *endpoints, *timeout)
	if eps == nil {
		return code
	}

	var value []byte
	if cmd.withValue {
		if len(pos) == 2 {
			value = []byte(pos[1])
		} else {
			if isTerminal(stdin) {
				fmt.Fprintf(stderr, "raftkv %s: reading the value from stdin; end it with Ctrl-D\n", cmd.name)
			}
			var err error
			value, err = readValue(stdin)
			if err != nil {
				fmt.Fprintf(stderr, "raftkv %s: %v\n", cmd.name, err)
				return exitFailure
			}
		}
	}

	ctx, cancel, c := dial(cmd.name, eps, *timeout, stderr)
	if c == nil {
		return exitFailure
	}
	defer cancel()
	defer c.Close()

	var err error
	switch cmd.name {
	case "get":
		value, err = c.Get(ctx, key)
	case "put":
		err = c.Put(ctx, key, value)
	case "update":
		err = c.Update(ctx, key, value)
	case "remove":
		err = c.Remove(ctx, key)
	}
	switch {
	case errors.Is(err, raftkv.ErrNotFound):
		fmt.Fprintf(stderr, "raftkv %s: key %q not found\n", cmd.name, key)
		return exitNotFound
	case errors.Is(err, raftkv.ErrValueTooLarge):
		fmt.Fprintf(stderr, "raftkv %s: the cluster refused the value of %d bytes as too large: %v\n", cmd.name, len(value), err)
		return exitFailure
	case errors.Is(err, raftkv.ErrOutcomeUnknown):
		fmt.Fprintf(stderr, "raftkv %s: %v\n(read the key to learn whether the write was applied; it was applied at most once)\n", cmd.name, err)
		return exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "raftkv %s: %v\n", cmd.name, err)
		return exitFailure
	}
	if cmd.name == "get" {
		if *newline {
			value = append(value, '\n')
		}
		if _, err := stdout.Write(value); err != nil {
			fmt.Fprintf(stderr, "raftkv get: write value: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

// readValue reads all of r, refusing more than any cluster accepts.
func readValue(r io.Reader) ([]byte, error) {
	if r == nil {
		return nil, errors.New("no VALUE given and no stdin to read it from")
	}
	v, err := io.ReadAll(io.LimitReader(r, config.MaxValueSizeLimit+1))
	if err != nil {
		return nil, fmt.Errorf("read the value from stdin: %w", err)
	}
	if len(v) > config.MaxValueSizeLimit {
		return nil, fmt.Errorf("the value on stdin exceeds %d bytes, the most any cluster accepts", config.MaxValueSizeLimit)
	}
	return v, nil
}
