package apiwire

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode"

	"github.com/raftkv/raftkv/remote/raftpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Every code a node can answer has exactly one row: a code added to
// raft.proto without a row (and so without a decision whether to retry)
// fails here.
func TestEveryWireCodeHasOneRow(t *testing.T) {
	for v, name := range raftpb.ErrorCode_name {
		n := 0
		for _, r := range table {
			if r.wire == raftpb.ErrorCode(v) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("wire code %s has %d rows, want 1", name, n)
		}
	}
}

// A reason names one row, and a status without a detail means at most one
// row: otherwise the client could not tell two errors apart.
func TestReasonsAndCodesAreUnambiguous(t *testing.T) {
	reasons := map[string]int{}
	byCode := map[codes.Code]int{}
	for i, r := range table {
		if r.reason != "" {
			if j, dup := reasons[r.reason]; dup {
				t.Errorf("rows %d and %d share reason %s", j, i, r.reason)
			}
			reasons[r.reason] = i
		}
		if r.byCode {
			if j, dup := byCode[r.grpc]; dup {
				t.Errorf("rows %d and %d both claim bare %s statuses", j, i, r.grpc)
			}
			byCode[r.grpc] = i
		}
		if r.reason != "" && r.grpc == noGRPC {
			t.Errorf("row %d has reason %s but no gRPC code", i, r.reason)
		}
	}
}

// Every error the client API returns arrives at the client as the same
// API error, final exactly when its row says so.
func TestEveryErrorSurvivesTheClientAPI(t *testing.T) {
	for i, r := range table {
		if r.err == nil || r.grpc == noGRPC || r.err == ErrOutcomeUnknown {
			continue
		}
		sent := fmt.Errorf("%w: detail %d", r.err, i)
		got, final := FromStatus(ToStatus(sent))
		if final != (r.class == Final) {
			t.Errorf("row %d (%v): final = %v, want %v", i, r.err, final, r.class == Final)
		}
		if final && !errors.Is(got, r.err) {
			t.Errorf("row %d: the client sees %v, want it to match %v", i, got, r.err)
		}
		if final && !strings.Contains(got.Error(), fmt.Sprintf("detail %d", i)) {
			t.Errorf("row %d: the client sees %q, which lost the server's words", i, got)
		}
		// An outcome-unknown error keeps its cause; it is final only when
		// the cause is (otherwise a retry with the same session learns it).
		got, final = FromStatus(ToStatus(OutcomeUnknown(sent)))
		if final != (r.class == Final) {
			t.Errorf("row %d outcome unknown: final = %v, want %v", i, final, r.class == Final)
		}
		if final && (!errors.Is(got, r.err) || !errors.Is(got, ErrOutcomeUnknown)) {
			t.Errorf("row %d outcome unknown: the client sees %v, want %v and ErrOutcomeUnknown", i, got, r.err)
		}
	}
}

// A status without our detail (gRPC's own, or an older server's) is read
// by its code alone, and only where the code is unambiguous.
func TestStatusWithoutDetail(t *testing.T) {
	cases := []struct {
		code  codes.Code
		want  error // nil: retry elsewhere
		final bool
	}{
		{codes.NotFound, ErrNotFound, true},
		{codes.ResourceExhausted, ErrValueTooLarge, true},
		{codes.InvalidArgument, ErrInvalidRequest, true},
		{codes.FailedPrecondition, ErrSessionExpired, true},
		{codes.Aborted, ErrStaleRequest, true},
		{codes.Unknown, nil, false}, // gRPC's UNKNOWN is not OUTCOME_UNKNOWN
		{codes.Unavailable, nil, false},
		{codes.Internal, nil, false},
		{codes.Unimplemented, nil, false},
	}
	for _, c := range cases {
		got, final := FromStatus(status.Error(c.code, "words"))
		if final != c.final || (c.want != nil && !errors.Is(got, c.want)) {
			t.Errorf("bare %s: %v (final %v), want %v (final %v)", c.code, got, final, c.want, c.final)
		}
	}
	if got, final := FromStatus(errors.New("not a status")); final || got == nil {
		t.Errorf("a non-status error: %v (final %v), want it back, not final", got, final)
	}
}

// The state machine's errors become the API's, in the API's words, both
// when refused before sending and when a node answers with them.
func TestStateErrorsBecomeAPIErrors(t *testing.T) {
	for i, r := range table {
		if r.state == nil {
			continue
		}
		stateErr := fmt.Errorf("%w: detail %d", r.state, i)
		check := func(how string, got error) {
			t.Helper()
			if !errors.Is(got, r.err) || errors.Is(got, r.state) {
				t.Errorf("row %d %s: %v, want %v and not %v", i, how, got, r.err, r.state)
			}
			if want := r.err.Error() + fmt.Sprintf(": detail %d", i); got.Error() != want {
				t.Errorf("row %d %s reads %q, want %q", i, how, got, want)
			}
		}
		check("refused before sending", FromState(stateErr))
		if r.wire == noWire {
			continue
		}
		code := WireCode(stateErr)
		if code != r.wire {
			t.Errorf("row %d: WireCode = %s, want %s", i, code, r.wire)
		}
		check("answered by a node", FromWire(code, stateErr.Error()))
	}
	if got := WireCode(errors.New("disk on fire")); got != raftpb.ErrorCode_ERROR_CODE_INTERNAL {
		t.Errorf("WireCode of an unknown error = %s, want INTERNAL", got)
	}
	if err := FromWire(raftpb.ErrorCode_ERROR_CODE_OK, ""); err != nil {
		t.Errorf("FromWire(OK) = %v", err)
	}
	if err := FromWire(raftpb.ErrorCode(1000), "from the future"); err == nil || WireClass(1000) != Final {
		t.Errorf("an unknown code: %v, class %v; want an error, final", err, WireClass(1000))
	}
}

// kv.proto's header, what a client in another language reads, names every
// status code and reason the table can send.
func TestKVProtoDocumentsEveryError(t *testing.T) {
	b, err := os.ReadFile("../../clientpb/proto/raftkv/v1/kv.proto")
	if err != nil {
		t.Fatal(err)
	}
	header, _, _ := strings.Cut(string(b), "syntax =")
	documented := map[string]bool{}
	for _, line := range strings.Split(header, "\n") {
		if f := strings.Fields(strings.TrimPrefix(line, "//")); len(f) > 0 && strings.HasPrefix(line, "//   ") {
			documented[strings.TrimSuffix(f[0], ",")] = true
		}
	}
	for _, r := range table {
		if r.grpc == noGRPC || r.grpc == codes.OK {
			continue
		}
		if name := protoName(r.grpc); !documented[name] {
			t.Errorf("kv.proto's header does not document %s", name)
		}
		if r.reason != "" && !strings.Contains(header, r.reason) {
			t.Errorf("kv.proto's header does not name reason %s", r.reason)
		}
	}
}

// protoName is a gRPC code as the protocol spells it (FAILED_PRECONDITION).
func protoName(c codes.Code) string {
	var b strings.Builder
	for i, ch := range c.String() {
		if i > 0 && unicode.IsUpper(ch) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(ch))
	}
	return b.String()
}
