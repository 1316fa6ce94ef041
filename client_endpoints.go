package raftkv

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/raftkv/raftkv/clientpb"
	"github.com/raftkv/raftkv/internal/limits"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// A Client's endpoints follow the cluster's membership: besides the
// endpoints given to Dial, it uses the client address of every member the
// cluster reports, at Dial and then every clientSyncEvery, so that a
// client outlives the replacement of the nodes it was first given. An
// endpoint is never dropped: a removed member's fails fast, and the client
// moves on.

// clientSyncEvery is how often a Client asks for the cluster's members:
// one small call, often enough that a client follows nodes replaced one
// after another.
const clientSyncEvery = 3 * time.Second

// endpointSet is the endpoints a Client uses. A published set is never
// changed: addEndpoints publishes a larger one.
type endpointSet struct {
	addrs []string
	conns []*grpc.ClientConn
	kv    []clientpb.KVClient
}

// addEndpoints dials the addresses not in use yet ("" is skipped) and
// publishes the set with them. It does nothing once the client is closed.
func (c *Client) addEndpoints(addrs []string) error {
	c.epsMu.Lock()
	defer c.epsMu.Unlock()
	select {
	case <-c.closing:
		return nil
	default:
	}
	old := c.eps.Load()
	next := &endpointSet{addrs: slices.Clone(old.addrs), conns: slices.Clone(old.conns), kv: slices.Clone(old.kv)}
	for _, a := range addrs {
		if a == "" || slices.Contains(next.addrs, a) {
			continue
		}
		conn, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()),
			// The client does not know the cluster's maxValueSize: it
			// carries what the largest configuration allows, and the
			// server refuses what its own does not.
			grpc.WithDefaultCallOptions(
				grpc.MaxCallSendMsgSize(limits.ClientCallMaxSendMsgSize),
				grpc.MaxCallRecvMsgSize(limits.ClientCallMaxRecvMsgSize)))
		if err != nil {
			// Close the connections of this call only; the published ones
			// stay with the client.
			for _, conn := range next.conns[len(old.conns):] {
				conn.Close()
			}
			return fmt.Errorf("raftkv: endpoint %q: %w", a, err)
		}
		next.addrs = append(next.addrs, a)
		next.conns = append(next.conns, conn)
		next.kv = append(next.kv, clientpb.NewKVClient(conn))
	}
	c.eps.Store(next)
	return nil
}

// syncEndpoints adds the members' client addresses every clientSyncEvery,
// until Close.
func (c *Client) syncEndpoints() {
	t := time.NewTicker(clientSyncEvery)
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), clientTryTimeout)
		ms, err := c.Members(ctx)
		cancel()
		if err != nil {
			continue // the cluster is busy or unreachable; the next round asks again
		}
		var addrs []string
		for _, m := range ms {
			addrs = append(addrs, m.ClientAddress)
		}
		_ = c.addEndpoints(addrs) // an address that does not parse is skipped until it is fixed
	}
}
