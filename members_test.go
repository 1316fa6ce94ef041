package raftkv

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// memberAPI is what DB and Client share of the membership API.
type memberAPI interface {
	Members(ctx context.Context) ([]Member, error)
	AddLearner(ctx context.Context, id uint64, peerAddress, clientAddress string) error
	PromoteLearner(ctx context.Context, id uint64) error
	RemoveMember(ctx context.Context, id uint64) error
	Put(ctx context.Context, key string, value []byte) error
}

func ids(ms []Member) []uint64 {
	var out []uint64
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

// checkMembership runs the membership calls a 3-node cluster can make
// without a fourth process: list, refusals, remove a voter.
func checkMembership(t *testing.T, api memberAPI) {
	ctx := ctxT(t)
	if err := api.Put(ctx, "k", []byte("v")); err != nil { // a leader with an entry of its term
		t.Fatal(err)
	}
	ms, err := api.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(ms), []uint64{1, 2, 3}) {
		t.Fatalf("Members = %+v, want nodes 1, 2, 3", ms)
	}
	for _, m := range ms {
		if m.Role != RoleVoter || m.PeerAddress == "" || m.Match == 0 {
			t.Fatalf("member %+v: want a voter with its peer address and a match index", m)
		}
	}

	for name, c := range map[string]struct {
		call func() error
		want error
	}{
		"add an existing member":   {func() error { return api.AddLearner(ctx, 2, "127.0.0.1:1", "") }, ErrAlreadyMember},
		"add without an address":   {func() error { return api.AddLearner(ctx, 4, "", "") }, ErrInvalidMemberChange},
		"add node 0":               {func() error { return api.AddLearner(ctx, 0, "127.0.0.1:1", "") }, ErrInvalidMemberChange},
		"add a node not running":   {func() error { return api.AddLearner(ctx, 4, "127.0.0.1:1", "") }, ErrInvalidMemberChange},
		"add with a long address":  {func() error { return api.AddLearner(ctx, 4, strings.Repeat("a", 300), "") }, ErrInvalidMemberChange},
		"promote an unknown node":  {func() error { return api.PromoteLearner(ctx, 9) }, ErrInvalidMemberChange},
		"promote a voter":          {func() error { return api.PromoteLearner(ctx, 2) }, ErrAlreadyMember},
		"remove an unknown member": {func() error { return api.RemoveMember(ctx, 9) }, ErrUnknownMember},
	} {
		if err := c.call(); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if after, err := api.Members(ctx); err != nil || !slices.Equal(ids(after), []uint64{1, 2, 3}) {
		t.Fatalf("refused changes changed the members: %+v, %v", after, err)
	}

	if err := api.RemoveMember(ctx, 3); err != nil {
		t.Fatalf("RemoveMember(3): %v", err)
	}
	if ms, err := api.Members(ctx); err != nil || !slices.Equal(ids(ms), []uint64{1, 2}) {
		t.Fatalf("after removing node 3: %+v, %v", ms, err)
	}
	// Two voters left: the cluster still commits.
	if err := api.Put(ctx, "after", []byte("removal")); err != nil {
		t.Fatalf("Put after removing node 3: %v", err)
	}
	if err := api.RemoveMember(ctx, 3); !errors.Is(err, ErrUnknownMember) {
		t.Fatalf("removing node 3 again: %v, want ErrUnknownMember", err)
	}
}

func TestDBMembership(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	checkMembership(t, db)
}

func TestClientMembership(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	cl, err := Dial(ctxT(t), serveClients(t, db))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	checkMembership(t, cl)
}
