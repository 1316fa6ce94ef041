package kvmodel_test

import (
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/raftkv/raftkv/internal/kvmodel"
)

// These tests check the checker: histories the model must accept, and the
// violations it must catch. They were written for the two suites that use
// the model, in their own names, which the aliases keep.

type (
	opKind    = kvmodel.Op
	outcome   = kvmodel.Outcome
	kvInput   = kvmodel.Input
	kvOutput  = kvmodel.Output
	linOpKind = kvmodel.Op
	linResult = kvmodel.Outcome
	linInput  = kvmodel.Input
	linOutput = kvmodel.Output
)

const (
	opGet       = kvmodel.Get
	opPut       = kvmodel.Put
	opUpdate    = kvmodel.Update
	opRemove    = kvmodel.Remove
	outOK       = kvmodel.OK
	outNotFound = kvmodel.NotFound
	outUnknown  = kvmodel.Unknown
	linGet      = kvmodel.Get
	linPut      = kvmodel.Put
	linUpdate   = kvmodel.Update
	linRemove   = kvmodel.Remove
	linOK       = kvmodel.OK
	linNotFound = kvmodel.NotFound
	linUnknown  = kvmodel.Unknown
)

// The model itself: it must reject what a broken database would do and
// accept what an unknown outcome allows, or the check above proves nothing.
func TestModelSingleKeyHistories(t *testing.T) {
	put := func(c int, v string, call, ret int64, res linResult) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: linInput{Op: linPut, Key: "k", Value: v}, Call: call, Output: linOutput{Outcome: res}, Return: ret}
	}
	get := func(c int, v string, call, ret int64, res linResult) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: linInput{Op: linGet, Key: "k"}, Call: call, Output: linOutput{Outcome: res, Value: v}, Return: ret}
	}
	op := func(c int, kind linOpKind, v string, call, ret int64, res linResult) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: linInput{Op: kind, Key: "k", Value: v}, Call: call, Output: linOutput{Outcome: res}, Return: ret}
	}
	const inf = 1000
	cases := []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"read sees the write", true, []porcupine.Operation{put(0, "a", 0, 10, linOK), get(1, "a", 20, 30, linOK)}},
		{"stale read after a write returned", false, []porcupine.Operation{
			put(0, "a", 0, 10, linOK), put(0, "b", 20, 30, linOK), get(1, "a", 40, 50, linOK)}},
		{"read of a value never written", false, []porcupine.Operation{put(0, "a", 0, 10, linOK), get(1, "z", 20, 30, linOK)}},
		{"concurrent read may see either", true, []porcupine.Operation{
			put(0, "a", 0, 10, linOK), put(0, "b", 20, 40, linOK), get(1, "a", 25, 30, linOK)}},
		{"failed write may show up later", true, []porcupine.Operation{
			put(0, "a", 0, inf, linUnknown), get(1, "", 10, 20, linNotFound), get(1, "a", 30, 40, linOK)}},
		{"failed write may never happen", true, []porcupine.Operation{
			put(0, "a", 0, inf, linUnknown), get(1, "", 10, 20, linNotFound)}},
		{"failed write cannot come back after being overwritten", false, []porcupine.Operation{
			put(0, "a", 0, inf, linUnknown), get(1, "a", 10, 20, linOK), put(1, "b", 30, 40, linOK), get(1, "a", 50, 60, linOK)}},
		{"update of an absent key writes nothing", false, []porcupine.Operation{
			op(0, linUpdate, "a", 0, 10, linNotFound), get(1, "a", 20, 30, linOK)}},
		{"update of an absent key cannot succeed", false, []porcupine.Operation{op(0, linUpdate, "a", 0, 10, linOK)}},
		{"remove then not found", true, []porcupine.Operation{
			put(0, "a", 0, 10, linOK), op(0, linRemove, "", 20, 30, linOK), get(1, "", 40, 50, linNotFound), op(1, linRemove, "", 60, 70, linNotFound)}},
		{"removed key read back", false, []porcupine.Operation{
			put(0, "a", 0, 10, linOK), op(0, linRemove, "", 20, 30, linOK), get(1, "a", 40, 50, linOK)}},
		{"remove of a present key cannot say not found", false, []porcupine.Operation{
			put(0, "a", 0, 10, linOK), op(0, linRemove, "", 20, 30, linNotFound)}},
	}
	for _, c := range cases {
		if got := porcupine.CheckOperations(kvmodel.Model(), c.ops); got != c.ok {
			t.Errorf("%s: linearizable = %v, want %v", c.name, got, c.ok)
		}
	}
}

// TestModel checks the checker: histories the model must accept and the
// violations it must catch (a stale read, a lost acknowledged write, an
// Update of a missing key that claims success).
func TestModelCatchesViolations(t *testing.T) {
	put := func(c int, key, v string, call, ret int64, out outcome) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvInput{Op: opPut, Key: key, Value: v}, Call: call, Output: kvOutput{Outcome: out}, Return: ret}
	}
	get := func(c int, key, v string, call, ret int64) porcupine.Operation {
		out := kvOutput{Outcome: outOK, Value: v}
		if v == "" {
			out = kvOutput{Outcome: outNotFound}
		}
		return porcupine.Operation{ClientId: c, Input: kvInput{Op: opGet, Key: key}, Call: call, Output: out, Return: ret}
	}
	op := func(c int, kind opKind, key, v string, call, ret int64, out outcome) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvInput{Op: kind, Key: key, Value: v}, Call: call, Output: kvOutput{Outcome: out}, Return: ret}
	}
	const end = 1000
	for _, tc := range []struct {
		name string
		ok   bool
		h    []porcupine.Operation
	}{
		{"sequential", true, []porcupine.Operation{
			put(0, "a", "1", 0, 10, outOK), get(1, "a", "1", 20, 30),
			op(0, opUpdate, "a", "2", 40, 50, outOK), get(1, "a", "2", 60, 70),
			op(0, opRemove, "a", "", 80, 90, outOK), get(1, "a", "", 100, 110),
			op(0, opUpdate, "a", "3", 120, 130, outNotFound), op(0, opRemove, "a", "", 140, 150, outNotFound),
		}},
		{"stale read after an acknowledged put", false, []porcupine.Operation{
			put(0, "a", "1", 0, 10, outOK), put(0, "a", "2", 20, 30, outOK), get(1, "a", "1", 40, 50),
		}},
		{"lost acknowledged put", false, []porcupine.Operation{
			put(0, "a", "1", 0, 10, outOK), get(1, "a", "", 20, 30),
		}},
		{"update of a missing key succeeded", false, []porcupine.Operation{
			op(0, opUpdate, "a", "1", 0, 10, outOK),
		}},
		{"unknown put that took effect", true, []porcupine.Operation{
			put(0, "a", "1", 0, end, outUnknown), get(1, "a", "1", 20, 30), get(1, "a", "1", 40, 50),
		}},
		{"unknown put that never happened", true, []porcupine.Operation{
			put(0, "a", "0", 0, 5, outOK), put(0, "a", "1", 10, end, outUnknown), get(1, "a", "0", 20, 30), get(1, "a", "0", 900, 910),
		}},
		{"unknown put seen, then unseen", false, []porcupine.Operation{
			put(0, "a", "0", 0, 5, outOK), put(0, "a", "1", 10, end, outUnknown), get(1, "a", "1", 20, 30), get(1, "a", "0", 40, 50),
		}},
		{"keys are independent", true, []porcupine.Operation{
			put(0, "a", "1", 0, 10, outOK), put(1, "b", "2", 0, 10, outOK), get(2, "a", "1", 20, 30), get(2, "b", "2", 20, 30),
		}},
	} {
		res, _ := porcupine.CheckOperationsVerbose(kvmodel.Model(), tc.h, 0)
		if (res == porcupine.Ok) != tc.ok {
			t.Errorf("%s: checker says %s, want linearizable=%v", tc.name, res, tc.ok)
		}
	}
}
