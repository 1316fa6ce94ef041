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
// cluster reports, asked right after Dial and then every clientSyncEvery,
// so that a client outlives the replacement of the nodes it was first
// given. An address is used only once it answered, through a connection
// of its own, with the same members: an address nothing serves yet is
// asked again at the next round, and one that answers for another cluster
// is never used. An endpoint is never dropped: a removed member's fails,
// and the client moves on.

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

// syncEndpoints adds the members' client addresses right away and then
// every clientSyncEvery, until Close.
func (c *Client) syncEndpoints() {
	t := time.NewTicker(clientSyncEvery)
	defer t.Stop()
	for {
		c.syncOnce()
		select {
		case <-c.closing:
			return
		case <-t.C:
		}
	}
}

// syncOnce asks the cluster for its members and adds the client addresses
// of those that answer with the same members.
func (c *Client) syncOnce() {
	ctx, cancel := context.WithTimeout(context.Background(), clientTryTimeout)
	defer cancel()
	ms, err := c.Members(ctx)
	if err != nil {
		return // the cluster is busy or unreachable; the next round asks again
	}
	have := c.eps.Load().addrs
	var ok []string
	for _, m := range ms {
		if m.ClientAddress == "" || slices.Contains(have, m.ClientAddress) {
			continue
		}
		if sameMembers(ctx, m.ClientAddress, ms) {
			ok = append(ok, m.ClientAddress)
		}
	}
	_ = c.addEndpoints(ok) // an address that does not parse was not probed successfully either
}

// sameMembers reports whether the node serving addr answers with the
// members ms: a node of this cluster, reachable now.
func sameMembers(ctx context.Context, addr string, ms []Member) bool {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return false
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, clientProbeTimeout)
	defer cancel()
	res, err := clientpb.NewKVClient(conn).Members(ctx, &clientpb.ClusterMembersRequest{})
	if err != nil {
		return false
	}
	got := res.GetMembers()
	if len(got) != len(ms) {
		return false
	}
	for i, m := range got {
		if m.GetId() != ms[i].ID {
			return false
		}
	}
	return true
}
