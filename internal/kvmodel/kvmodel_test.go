package kvmodel_test

import (
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/raftkv/raftkv/internal/kvmodel"
)

// These tests check the checker: histories the model must accept, and the
// violations it must catch.

// The model itself: it must reject what a broken database would do and
// accept what an unknown outcome allows, or the check above proves nothing.
func TestModelSingleKeyHistories(t *testing.T) {
	put := func(c int, v string, call, ret int64, res kvmodel.Outcome) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Op: kvmodel.Put, Key: "k", Value: v}, Call: call, Output: kvmodel.Output{Outcome: res}, Return: ret}
	}
	get := func(c int, v string, call, ret int64, res kvmodel.Outcome) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Op: kvmodel.Get, Key: "k"}, Call: call, Output: kvmodel.Output{Outcome: res, Value: v}, Return: ret}
	}
	op := func(c int, kind kvmodel.Op, v string, call, ret int64, res kvmodel.Outcome) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Op: kind, Key: "k", Value: v}, Call: call, Output: kvmodel.Output{Outcome: res}, Return: ret}
	}
	const inf = 1000
	cases := []struct {
		name string
		ok   bool
		ops  []porcupine.Operation
	}{
		{"read sees the write", true, []porcupine.Operation{put(0, "a", 0, 10, kvmodel.OK), get(1, "a", 20, 30, kvmodel.OK)}},
		{"stale read after a write returned", false, []porcupine.Operation{
			put(0, "a", 0, 10, kvmodel.OK), put(0, "b", 20, 30, kvmodel.OK), get(1, "a", 40, 50, kvmodel.OK)}},
		{"read of a value never written", false, []porcupine.Operation{put(0, "a", 0, 10, kvmodel.OK), get(1, "z", 20, 30, kvmodel.OK)}},
		{"concurrent read may see either", true, []porcupine.Operation{
			put(0, "a", 0, 10, kvmodel.OK), put(0, "b", 20, 40, kvmodel.OK), get(1, "a", 25, 30, kvmodel.OK)}},
		{"failed write may show up later", true, []porcupine.Operation{
			put(0, "a", 0, inf, kvmodel.Unknown), get(1, "", 10, 20, kvmodel.NotFound), get(1, "a", 30, 40, kvmodel.OK)}},
		{"failed write may never happen", true, []porcupine.Operation{
			put(0, "a", 0, inf, kvmodel.Unknown), get(1, "", 10, 20, kvmodel.NotFound)}},
		{"failed write cannot come back after being overwritten", false, []porcupine.Operation{
			put(0, "a", 0, inf, kvmodel.Unknown), get(1, "a", 10, 20, kvmodel.OK), put(1, "b", 30, 40, kvmodel.OK), get(1, "a", 50, 60, kvmodel.OK)}},
		{"update of an absent key writes nothing", false, []porcupine.Operation{
			op(0, kvmodel.Update, "a", 0, 10, kvmodel.NotFound), get(1, "a", 20, 30, kvmodel.OK)}},
		{"update of an absent key cannot succeed", false, []porcupine.Operation{op(0, kvmodel.Update, "a", 0, 10, kvmodel.OK)}},
		{"remove then not found", true, []porcupine.Operation{
			put(0, "a", 0, 10, kvmodel.OK), op(0, kvmodel.Remove, "", 20, 30, kvmodel.OK), get(1, "", 40, 50, kvmodel.NotFound), op(1, kvmodel.Remove, "", 60, 70, kvmodel.NotFound)}},
		{"removed key read back", false, []porcupine.Operation{
			put(0, "a", 0, 10, kvmodel.OK), op(0, kvmodel.Remove, "", 20, 30, kvmodel.OK), get(1, "a", 40, 50, kvmodel.OK)}},
		{"remove of a present key cannot say not found", false, []porcupine.Operation{
			put(0, "a", 0, 10, kvmodel.OK), op(0, kvmodel.Remove, "", 20, 30, kvmodel.NotFound)}},
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
	put := func(c int, key, v string, call, ret int64, out kvmodel.Outcome) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Op: kvmodel.Put, Key: key, Value: v}, Call: call, Output: kvmodel.Output{Outcome: out}, Return: ret}
	}
	get := func(c int, key, v string, call, ret int64) porcupine.Operation {
		out := kvmodel.Output{Outcome: kvmodel.OK, Value: v}
		if v == "" {
			out = kvmodel.Output{Outcome: kvmodel.NotFound}
		}
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Op: kvmodel.Get, Key: key}, Call: call, Output: out, Return: ret}
	}
	op := func(c int, kind kvmodel.Op, key, v string, call, ret int64, out kvmodel.Outcome) porcupine.Operation {
		return porcupine.Operation{ClientId: c, Input: kvmodel.Input{Op: kind, Key: key, Value: v}, Call: call, Output: kvmodel.Output{Outcome: out}, Return: ret}
	}
	const end = 1000
	for _, tc := range []struct {
		name string
		ok   bool
		h    []porcupine.Operation
	}{
		{"sequential", true, []porcupine.Operation{
			put(0, "a", "1", 0, 10, kvmodel.OK), get(1, "a", "1", 20, 30),
			op(0, kvmodel.Update, "a", "2", 40, 50, kvmodel.OK), get(1, "a", "2", 60, 70),
			op(0, kvmodel.Remove, "a", "", 80, 90, kvmodel.OK), get(1, "a", "", 100, 110),
			op(0, kvmodel.Update, "a", "3", 120, 130, kvmodel.NotFound), op(0, kvmodel.Remove, "a", "", 140, 150, kvmodel.NotFound),
		}},
		{"stale read after an acknowledged put", false, []porcupine.Operation{
			put(0, "a", "1", 0, 10, kvmodel.OK), put(0, "a", "2", 20, 30, kvmodel.OK), get(1, "a", "1", 40, 50),
		}},
		{"lost acknowledged put", false, []porcupine.Operation{
			put(0, "a", "1", 0, 10, kvmodel.OK), get(1, "a", "", 20, 30),
		}},
		{"update of a missing key succeeded", false, []porcupine.Operation{
			op(0, kvmodel.Update, "a", "1", 0, 10, kvmodel.OK),
		}},
		{"unknown put that took effect", true, []porcupine.Operation{
			put(0, "a", "1", 0, end, kvmodel.Unknown), get(1, "a", "1", 20, 30), get(1, "a", "1", 40, 50),
		}},
		{"unknown put that never happened", true, []porcupine.Operation{
			put(0, "a", "0", 0, 5, kvmodel.OK), put(0, "a", "1", 10, end, kvmodel.Unknown), get(1, "a", "0", 20, 30), get(1, "a", "0", 900, 910),
		}},
		{"unknown put seen, then unseen", false, []porcupine.Operation{
			put(0, "a", "0", 0, 5, kvmodel.OK), put(0, "a", "1", 10, end, kvmodel.Unknown), get(1, "a", "1", 20, 30), get(1, "a", "0", 40, 50),
		}},
		{"keys are independent", true, []porcupine.Operation{
			put(0, "a", "1", 0, 10, kvmodel.OK), put(1, "b", "2", 0, 10, kvmodel.OK), get(2, "a", "1", 20, 30), get(2, "b", "2", 20, 30),
		}},
	} {
		res, _ := porcupine.CheckOperationsVerbose(kvmodel.Model(), tc.h, 0)
		if (res == porcupine.Ok) != tc.ok {
			t.Errorf("%s: checker says %s, want linearizable=%v", tc.name, res, tc.ok)
		}
	}
}
