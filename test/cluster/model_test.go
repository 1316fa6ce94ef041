//go:build linux

package cluster_test

import (
	"github.com/raftkv/raftkv/internal/kvmodel"
	"testing"

	"github.com/anishathalye/porcupine"
)

// TestModel checks the checker: histories the model must accept and the
// violations it must catch (a stale read, a lost acknowledged write, an
// Update of a missing key that claims success).
func TestModel(t *testing.T) {
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
