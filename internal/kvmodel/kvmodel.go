package kvmodel

import (
	"fmt"
	"slices"

	"github.com/anishathalye/porcupine"
)

// Op is a client operation.
type Op uint8

// The operations of the KV API.
const (
	Get Op = iota
	Put
	Update
	Remove
)

func (o Op) String() string {
	if o > Remove {
		return fmt.Sprintf("op(%d)", uint8(o))
	}
	return [...]string{"get", "put", "update", "remove"}[o]
}

// Outcome is what the client saw.
type Outcome uint8

const (
	// OK is a definite success.
	OK Outcome = iota
	// NotFound is a definite "no such key"; nothing was written.
	NotFound
	// Unknown is an error or timeout: a write may or may not have taken
	// effect. Record it with the end of the history as its return time, so
	// "it never happened" is a possible linearization.
	Unknown
)

// Input is an operation as called.
type Input struct {
	Op    Op
	Key   string
	Value string // Put and Update
}

// Output is an operation's result.
type Output struct {
	Outcome Outcome
	Value   string // Get with OK: the value read
	Err     string // Unknown: the client's error, for the visualisation
}

// register is one key's state; comparable, so porcupine's default equality
// works.
type register struct {
	present bool
	value   string
}

// Model returns the porcupine model: Get returns the value or NotFound;
// Put sets; Update sets an existing key, else NotFound; Remove deletes an
// existing key, else NotFound. Histories are partitioned by key.
func Model() porcupine.Model {
	return porcupine.Model{
		Partition:         partitionByKey,
		Init:              func() any { return register{} },
		Step:              step,
		DescribeOperation: describeOperation,
		DescribeState: func(state any) string {
			s := state.(register)
			if !s.present {
				return "(absent)"
			}
			return fmt.Sprintf("%q", s.value)
		},
	}
}

func partitionByKey(history []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	var keys []string
	for _, op := range history {
		k := op.Input.(Input).Key
		if _, ok := byKey[k]; !ok {
			keys = append(keys, k)
		}
		byKey[k] = append(byKey[k], op)
	}
	slices.Sort(keys)
	out := make([][]porcupine.Operation, 0, len(keys))
	for _, k := range keys {
		out = append(out, byKey[k])
	}
	return out
}

func step(state, input, output any) (bool, any) {
	s, in, out := state.(register), input.(Input), output.(Output)
	switch in.Op {
	case Get:
		switch out.Outcome {
		case OK:
			return s.present && s.value == out.Value, s
		case NotFound:
			return !s.present, s
		}
		return false, s // a failed read says nothing; don't record it
	case Put:
		return out.Outcome != NotFound, register{true, in.Value}
	case Update:
		switch out.Outcome {
		case OK:
			return s.present, register{true, in.Value}
		case NotFound:
			return !s.present, s
		}
		if s.present {
			return true, register{true, in.Value}
		}
		return true, s
	case Remove:
		switch out.Outcome {
		case OK:
			return s.present, register{}
		case NotFound:
			return !s.present, s
		}
		return true, register{}
	}
	return false, s
}

func describeOperation(input, output any) string {
	in, out := input.(Input), output.(Output)
	var res string
	switch out.Outcome {
	case OK:
		res = "ok"
		if in.Op == Get {
			res = fmt.Sprintf("%q", out.Value)
		}
	case NotFound:
		res = "not found"
	default:
		res = "unknown (" + out.Err + ")"
	}
	switch in.Op {
	case Get, Remove:
		return fmt.Sprintf("%s(%s) -> %s", in.Op, in.Key, res)
	}
	return fmt.Sprintf("%s(%s, %q) -> %s", in.Op, in.Key, in.Value, res)
}
