package raftkv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/internal/limits"
	"google.golang.org/grpc"
)

// serveClients serves db's client API on a loopback port and returns it.
func serveClients(t testing.TB, db *DB) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(ClientAPIServerOptions(db)...)
	RegisterClientAPI(gs, db)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	return lis.Addr().String()
}

func TestClientAgainstServedDB(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	addr := serveClients(t, db)
	ctx := ctxT(t)
	// A dead endpoint first: the client must move past it.
	dead := freePorts(t, 1)[0]
	c, err := Dial(ctx, "127.0.0.1:"+itoa(dead), addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()
	var kv KV = c
	if err := kv.Put(ctx, "a", []byte("1")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, err := kv.Get(ctx, "a"); err != nil || string(v) != "1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := kv.Update(ctx, "nope", []byte("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Update missing: %v, want ErrNotFound", err)
	}
	if err := kv.Remove(ctx, "a"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := kv.Get(ctx, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get removed: %v, want ErrNotFound", err)
	}
	if err := kv.Put(ctx, "", []byte("x")); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("Put empty key: %v, want ErrEmptyKey", err)
	}
	big := make([]byte, db.cfg.MaxValueSize+1)
	if err := kv.Put(ctx, "big", big); !errors.Is(err, ErrValueTooLarge) {
		t.Fatalf("Put oversized value: %v, want ErrValueTooLarge", err)
	}
	st, err := c.Status(ctx)
	if err != nil || len(st) != 3 {
		t.Fatalf("Status: %v, %v", st, err)
	}
	leaders := 0
	for _, n := range st {
		if n.Role == "leader" {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("Status shows %d leaders: %v", leaders, st)
	}
}

// TestClientLargeValues: a value of exactly the configured maxValueSize,
// above gRPC's 4 MiB default, is put and read back through the client API;
// every too-large value is refused at once with ErrValueTooLarge, whichever
// limit catches it: the server's check (INVALID_ARGUMENT), the server's gRPC
// receive limit (RESOURCE_EXHAUSTED) or the client's own bound. A refusal
// retried until the deadline would end in ErrUnavailable instead.
func TestClientLargeValues(t *testing.T) {
	cfg := testConfig(t, 3)
	cfg.MaxValueSize = 6 << 20
	db := openTest(t, cfg)
	defer db.Close()
	addr := serveClients(t, db)
	ctx := ctxT(t)
	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	defer c.Close()

	value := bytes.Repeat([]byte("large value "), cfg.MaxValueSize/12+1)[:cfg.MaxValueSize]
	if err := c.Put(ctx, "max", value); err != nil {
		t.Fatalf("Put of %d bytes (maxValueSize): %v", len(value), err)
	}
	got, err := c.Get(ctx, "max")
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Get of the %d-byte value: %d bytes, %v", len(value), len(got), err)
	}
	for _, size := range []int{
		cfg.MaxValueSize + 1,           // refused by the server's check
		db.limits.ClientMaxRecvMsgSize, // refused by the server's gRPC limit
		limits.MaxValueSize + 1,        // refused by the client
	} {
		err := c.Put(ctx, "too-large", make([]byte, size))
		if !errors.Is(err, ErrValueTooLarge) || errors.Is(err, ErrUnavailable) {
			t.Errorf("Put of %d bytes (maxValueSize %d): %v; want ErrValueTooLarge at once", size, cfg.MaxValueSize, err)
		}
	}
	if _, err := c.Get(ctx, "too-large"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a refused key: %v, want ErrNotFound", err)
	}
	// The refusals left the client's sessions usable.
	if err := c.Put(ctx, "after", []byte("ok")); err != nil {
		t.Errorf("Put after the refusals: %v", err)
	}
}

func TestDialFailsWithoutEndpoints(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 500e6)
	defer cancel()
	if _, err := Dial(ctx); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("Dial(): %v, want ErrInvalidOption", err)
	}
	dead := freePorts(t, 1)[0]
	_, err := Dial(ctx, "127.0.0.1:"+itoa(dead))
	if err == nil || !strings.Contains(err.Error(), "no endpoint") {
		t.Fatalf("Dial(dead): %v, want an error naming the endpoints", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The client starts at the leader's endpoint when it knows one, so calls
// skip a follower's forwarding hop; unknown leaders or endpoints leave the
// choice alone.
func TestClientPrefersLeaderEndpoint(t *testing.T) {
	node := func(id, leader uint64, addr string) NodeStatus {
		return NodeStatus{ID: id, ClientAddress: addr, Leader: leader}
	}
	withEndpoints := func(addrs ...string) *Client {
		c := &Client{}
		c.eps.Store(&endpointSet{addrs: addrs})
		return c
	}
	c := withEndpoints("h:1", "h:2", "h:3")
	c.preferLeader([]NodeStatus{node(1, 2, "h:1"), node(2, 2, "h:2"), node(3, 2, "h:3")})
	if got := c.preferred.Load(); got != 1 {
		t.Fatalf("preferred endpoint %d, want 1 (the leader's)", got)
	}
	c = withEndpoints("h:1", "h:3")
	c.preferLeader([]NodeStatus{node(1, 2, "h:1"), node(2, 2, "h:2"), node(3, 2, "h:3")})
	if got := c.preferred.Load(); got != 0 {
		t.Fatalf("preferred endpoint %d, want 0: the leader's endpoint is not among the client's", got)
	}
	c.preferLeader([]NodeStatus{node(1, 0, "h:1"), node(3, 0, "h:3")})
	if got := c.preferred.Load(); got != 0 {
		t.Fatalf("preferred endpoint %d with no leader known, want 0", got)
	}
}

// The client API's status codes carry what a write's error says about the
// write: an expired session after the server had sent a copy stays
// "outcome unknown" on the client, a plain expiry stays "not executed",
// and an unavailable cluster is left for the client to retry.
func TestWriteErrorsSurviveTheWire(t *testing.T) {
	expired := fmt.Errorf("%w: session 7 expired", ErrSessionExpired)
	cases := []struct {
		name    string
		err     error
		want    []error // matched by the client's error; nil: a retryable failure
		notWant error
	}{
		{"expired after a copy was sent", apiwire.OutcomeUnknown(expired), []error{ErrSessionExpired, ErrOutcomeUnknown}, nil},
		{"expired before any copy ran", expired, []error{ErrSessionExpired}, ErrOutcomeUnknown},
		{"not found", ErrNotFound, []error{ErrNotFound}, ErrOutcomeUnknown},
		{"stale", fmt.Errorf("%w: seq 3 after 4", ErrStaleRequest), []error{ErrStaleRequest}, ErrOutcomeUnknown},
		{"unavailable after a send", apiwire.OutcomeUnknown(fmt.Errorf("%w: %w", ErrUnavailable, context.DeadlineExceeded)), nil, nil},
		{"closed", apiwire.OutcomeUnknown(ErrClosed), nil, nil},
	}
	for _, c := range cases {
		got := fromStatus(apiwire.ToStatus(c.err))
		if c.want == nil {
			if got != nil {
				t.Errorf("%s: the client sees %v, want a failure to retry elsewhere", c.name, got)
			}
			continue
		}
		for _, w := range c.want {
			if !errors.Is(got, w) {
				t.Errorf("%s: the client sees %v, want it to match %v", c.name, got, w)
			}
		}
		if c.notWant != nil && errors.Is(got, c.notWant) {
			t.Errorf("%s: the client sees %v, which must not match %v", c.name, got, c.notWant)
		}
	}
}

// fromStatus is the API error the Client makes of a client API status, or
// nil for a failure it retries elsewhere.
func fromStatus(err error) error {
	if err, final := apiwire.FromStatus(err); final {
		return err
	}
	return nil
}

// A client whose rotation has gone once round its endpoints (preferred at
// or past the end of the list) still moves on from a dead endpoint. The
// rotation used to compare the stored position with the index it had
// reduced modulo the list, so after a full round of failures (a leader's
// endpoint killed, the others failing while they elected) it retried the
// first endpoint for good: with that endpoint dead, every call failed.
func TestClientLeavesADeadEndpointAfterAFullRound(t *testing.T) {
	db := openTest(t, testConfig(t, 3))
	defer db.Close()
	addr := serveClients(t, db)
	dead := deadEndpoint(t)
	cl, err := Dial(ctxT(t), dead, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	n := len(cl.eps.Load().addrs)
	for _, p := range []int64{int64(n), int64(2*n) + 1, 1 << 40} {
		// Every position that reduces to the dead endpoint.
		cl.preferred.Store(p - p%int64(n))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := cl.Put(ctx, "k", []byte("v"))
		cancel()
		if err != nil {
			t.Fatalf("Put with the rotation at %d (dead endpoint %s first): %v", p-p%int64(n), dead, err)
		}
	}
}

// deadEndpoint is a loopback address nothing listens on.
func deadEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
