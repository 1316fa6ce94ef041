package raftkv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"
)

// The one retry loop of a request, shared by the router (a node of this
// process asking the cluster's nodes, route.go) and the Client (asking the
// nodes' client endpoints, client.go). The loop owns what they share: the
// request's deadline (the request timeout when the context has none), Close
// ending it, the pauses between attempts, and the end as ErrUnavailable.
// What an attempt's outcome means (an answer, or a reason to try again
// here or elsewhere) comes from the error table (internal/apiwire), read
// by each caller for its own wire.

// next is what the loop does after one attempt.
type next uint8

const (
	// answered: the attempt got the request's answer; the loop returns it.
	answered next = iota
	// again: try again at once (the attempt moved on to another node).
	again
	// later: try again after a pause, so an election can finish or a
	// failed round of nodes is not hammered.
	later
)

// retry runs attempt until it answers, the context ends (bounded by
// timeout when it has no deadline) or closing is closed. final reports
// whether attempt answered; err is then its answer. Otherwise err is
// ErrClosed, or ErrUnavailable wrapping the context's error and naming the
// last attempt's error.
func retry(ctx context.Context, timeout time.Duration, closing <-chan struct{}, attempt func(context.Context) (next, error)) (final bool, err error) {
	ctx, cancel := bounded(ctx, timeout)
	defer cancel()
	var bo backoff
	var last error
	for {
		select {
		case <-closing:
			return false, ErrClosed
		default:
		}
		if err := ctx.Err(); err != nil {
			if last == nil {
				return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
			}
			return false, fmt.Errorf("%w: %w (last error: %v)", ErrUnavailable, err, last)
		}
		n, err := attempt(ctx)
		if n == answered {
			return true, err
		}
		if err != nil {
			last = err
		}
		if n == later {
			bo.pause(ctx, closing)
		}
	}
}

// bounded gives a context without a deadline the request timeout d.
func bounded(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}

// backoffBase and backoffMax bound the pauses between retries.
const (
	backoffBase = 10 * time.Millisecond
	backoffMax  = 500 * time.Millisecond
)

// backoff spaces out one call's retries: exponentially from backoffBase to
// backoffMax, each pause drawn from the upper half of its range, so callers
// that failed together do not all retry together.
type backoff struct{ n uint }

func (b *backoff) pause(ctx context.Context, closing <-chan struct{}) {
	d := min(backoffMax, backoffBase<<min(b.n, 16))
	b.n++
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-closing:
	}
}
