package raftkv

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/raftkv/raftkv/internal/apiwire"
	"github.com/raftkv/raftkv/kvstate"
	"github.com/raftkv/raftkv/metrics"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// gateway is the one path every request of this process takes into the
// cluster, whether the embedded DB made it or the client API received it
// from a network client: validate, observe (latency by op and outcome),
// run under a client session, route to the leader (router), and turn the
// node's answer into the API's error (internal/apiwire). It is safe for
// concurrent use.
type gateway struct {
	route    *router
	sessions sessionPool
	// metrics is nil unless the DB was opened WithMetrics.
	metrics *metrics.Set
	// maxValue is the configuration's maxValueSize.
	maxValue int
	timeout  time.Duration
}

func newGateway(route *router, m *metrics.Set, maxValue int, timeout time.Duration) *gateway {
	g := &gateway{route: route, metrics: m, maxValue: maxValue, timeout: timeout}
	g.sessions.register = g.registerSession
	return g
}

// write runs one write. A command without a session (ClientID 0: the DB's
// own) runs under a session of the pool; a network client's carries its
// own, which the client API has checked, and is proposed under it.
func (g *gateway) write(ctx context.Context, cmd kvstate.Command) (err error) {
	defer g.observe(opName(cmd.Op), time.Now(), &err)
	if err := validate(cmd.Key, cmd.Value, g.maxValue); err != nil {
		return err
	}
	ctx, cancel := bounded(ctx, g.timeout)
	defer cancel()
	if cmd.ClientID != 0 {
		_, err := g.propose(ctx, cmd)
		return err
	}
	return g.sessions.write(ctx, func(ctx context.Context, clientID, seq uint64) (bool, error) {
		cmd.ClientID, cmd.Seq = clientID, seq
		return g.propose(ctx, cmd)
	})
}

// get reads key, linearizably.
func (g *gateway) get(ctx context.Context, key string) (_ []byte, err error) {
	defer g.observe("get", time.Now(), &err)
	if err := validate(key, nil, g.maxValue); err != nil {
		return nil, err
	}
	res, _, err := g.route.call(ctx, false, &raftpb.GetRequest{ClusterId: g.route.clusterID, Key: key})
	if err != nil {
		return nil, err
	}
	r := res.(*raftpb.GetResponse)
	if err := apiwire.FromWire(r.GetErrorCode(), r.GetMessage()); err != nil {
		return nil, err
	}
	return r.GetValue(), nil
}

// validate refuses a key or value before anything is sent, with the API's
// error; maxValue 0 means kvstate's default.
func validate(key string, value []byte, maxValue int) error {
	return apiwire.FromState(kvstate.ValidateKV(key, value, maxValue))
}

// propose sends a command with the session it carries, re-sending the same
// bytes until the cluster answers, for at most maxWriteRetry, and waits for
// its answer. final reports whether the cluster gave one; err is then the
// command's outcome, marked ErrOutcomeUnknown when it is ErrSessionExpired
// and an earlier copy may have run. Without a final answer, err says why
// none came (no quorum in time, closed), marked ErrOutcomeUnknown when a
// copy may have been proposed.
func (g *gateway) propose(ctx context.Context, cmd kvstate.Command) (final bool, err error) {
	if cmd.ClientID == 0 {
		// Every copy re-sent below would run again: refuse, never guess.
		return false, fmt.Errorf("%w: a write needs a client session (client id 0)", apiwire.ErrInvalidRequest)
	}
	ctx, cancel := bounded(ctx, g.timeout)
	defer cancel()
	ctx, cancelRetry := context.WithTimeout(ctx, maxWriteRetry)
	defer cancelRetry()
	payload := cmd.Encode()
	res, sent, err := g.route.call(ctx, true, &raftpb.ProposeRequest{ClusterId: g.route.clusterID, Payload: payload})
	if err != nil {
		if sent {
			err = apiwire.OutcomeUnknown(err)
		}
		return false, err
	}
	r := res.(*raftpb.ProposeResponse)
	err = apiwire.FromWire(r.GetErrorCode(), r.GetMessage())
	if sent && errors.Is(err, ErrSessionExpired) {
		err = apiwire.OutcomeUnknown(err)
	}
	return true, err
}

// registerSession registers a new client session through the log and
// returns its id (the index of the registering entry). A registration that
// fails or whose answer is lost leaves at most an unused session behind,
// which expires; the write that needed it was not sent.
func (g *gateway) registerSession(ctx context.Context) (uint64, error) {
	payload := kvstate.Command{Op: kvstate.OpRegister}.Encode()
	res, _, err := g.route.call(ctx, true, &raftpb.ProposeRequest{ClusterId: g.route.clusterID, Payload: payload})
	if err != nil {
		return 0, err
	}
	r := res.(*raftpb.ProposeResponse)
	if err := apiwire.FromWire(r.GetErrorCode(), r.GetMessage()); err != nil {
		return 0, fmt.Errorf("raftkv: registering a client session: %w", err)
	}
	if r.GetIndex() == 0 {
		return 0, fmt.Errorf("raftkv: registering a client session: the leader answered no index")
	}
	return r.GetIndex(), nil
}

// status asks nodes ids for their state, all at once, so an unreachable
// node costs one timeout for the whole call, not one each; a node that
// does not answer is reported unreachable.
func (g *gateway) status(ctx context.Context, ids []uint64) ([]NodeStatus, error) {
	select {
	case <-g.route.closing:
		return nil, ErrClosed
	default:
	}
	out := make([]NodeStatus, len(ids))
	var wg sync.WaitGroup
	t := g.route.table.Load()
	for i, id := range ids {
		a := t.addrs[id]
		out[i] = NodeStatus{ID: id, Address: a.peer, ClientAddress: a.client}
		wg.Go(func() {
			res, err := g.route.ask(ctx, t.pids[id], &raftpb.StatusRequest{}, false)
			r, ok := res.(*raftpb.StatusResponse)
			if err != nil || !ok || r.GetErrorCode() != raftpb.ErrorCode_ERROR_CODE_OK {
				return
			}
			s := apiwire.StatusFromWire(r)
			s.ID, s.Address, s.ClientAddress = id, a.peer, a.client
			out[i] = s
		})
	}
	wg.Wait()
	return out, ctx.Err()
}

// observe records a request's latency and outcome, when metrics are on.
func (g *gateway) observe(op string, start time.Time, errp *error) {
	if g.metrics == nil {
		return
	}
	outcome := "ok"
	switch {
	case errp == nil || *errp == nil:
	case errors.Is(*errp, ErrNotFound):
		outcome = "not_found"
	default:
		outcome = "error"
	}
	g.metrics.ObserveClient(op, outcome, time.Since(start))
}

// opName is a write's op as the metrics label it.
func opName(op kvstate.Op) string {
	switch op {
	case kvstate.OpPut:
		return "put"
	case kvstate.OpUpdate:
		return "update"
	case kvstate.OpRemove:
		return "remove"
	}
	return "write"
}

// transfer asks the leader to hand leadership to node to (0: the leader
// picks) and waits for the outcome, which the leader gives once it knows
// it (see actors' transfer.go). The request is routed like a write, so
// that one attempt may wait for the whole transfer.
func (g *gateway) transfer(ctx context.Context, to uint64) error {
	ctx, cancel := bounded(ctx, g.timeout)
	defer cancel()
	res, sent, err := g.route.call(ctx, true, &raftpb.TransferRequest{ClusterId: g.route.clusterID, To: to})
	if err != nil {
		return err
	}
	r := res.(*raftpb.TransferResponse)
	err = apiwire.FromWire(r.GetErrorCode(), r.GetMessage())
	if sent && to != 0 && errors.Is(err, ErrInvalidTransfer) && r.GetLeaderId() == to {
		// An earlier copy, whose answer was lost, made to the leader.
		return nil
	}
	return err
}
