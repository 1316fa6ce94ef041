package apiwire

import (
	"reflect"
	"testing"

	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/nodestatus"
)

// filled is a Status whose every field holds a value of its own, so that a
// field a conversion forgets shows as a difference.
func filled(t *testing.T) nodestatus.Status {
	var s nodestatus.Status
	v := reflect.ValueOf(&s).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Uint64:
			f.SetUint(uint64(1000 + i))
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + "-value")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Slice: // Members, below
		default:
			t.Fatalf("field %s of kind %s: teach this test (and the conversions) about it", v.Type().Field(i).Name, f.Kind())
		}
	}
	// Lag is derived from the report's last index on the way in.
	s.Members = []nodestatus.Member{
		{ID: 7, Role: nodestatus.RoleLearner, Match: 5, Lag: s.LastIndex - 5, PeerAddress: "p:1", ClientAddress: "c:1"},
		{ID: 8, Role: nodestatus.RoleVoter},
	}
	return s
}

// Every field of the one status type crosses both wires intact.
func TestStatusCrossesTheWires(t *testing.T) {
	s := filled(t)
	peer := s
	peer.Address, peer.ClientAddress = "", "" // the peer answer has no room for them
	if got := StatusFromWire(StatusToWire(s)); !reflect.DeepEqual(got, peer) {
		t.Errorf("over the peer wire:\n got %+v\nwant %+v", got, peer)
	}
	if got := NodeFromClient(NodeToClient(s)); !reflect.DeepEqual(got, s) {
		t.Errorf("over the client API:\n got %+v\nwant %+v", got, s)
	}
	// An unreachable node reports its id and addresses, and zeros.
	down := nodestatus.Status{ID: 3, Address: "a:1", ClientAddress: "a:2"}
	if got := NodeFromClient(NodeToClient(down)); !reflect.DeepEqual(got, down) {
		t.Errorf("an unreachable node: got %+v, want %+v", got, down)
	}
	// Network input never panics: nil and empty messages give zeros.
	if got := NodeFromClient(nil); !reflect.DeepEqual(got, nodestatus.Status{}) {
		t.Errorf("nil node: %+v", got)
	}
	if got := NodeFromClient(&clientpb.NodeStatus{Id: 2, Reachable: true}); got.ID != 2 || !got.Reachable || got.Term != 0 {
		t.Errorf("node without a status: %+v", got)
	}
}
