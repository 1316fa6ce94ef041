package raftkv

import (
	"context"
	"errors"
	"sync"
)

// A client session is what makes a retried write apply at most once (and,
// once acknowledged, exactly once): the state machine remembers each
// session's last sequence number and answer.
// Sessions are registered through the log (one round trip; the id is the
// index of the registering entry), and a write on a session the cluster no
// longer holds is refused, never executed as new. A session allows one
// command in flight, so the DB (and the Client) keep a pool and give each
// concurrent call a session of its own, registering one when the pool is
// empty.

type session struct {
	id  uint64
	seq uint64
}

func (s *session) next() uint64 {
	s.seq++
	return s.seq
}

type sessionPool struct {
	// register asks the cluster for a new session and returns its id.
	register func(ctx context.Context) (uint64, error)

	mu   sync.Mutex
	free []*session
}

// maxFreshSessions bounds how often one write is sent again under a new
// session after the one it got had expired unused. Once is the normal
// case (a session idle in the pool for a whole expiry window); more means
// sessions expire between their registration and their first command,
// which only an absurdly small SessionTTL does.
const maxFreshSessions = 3

func (p *sessionPool) get(ctx context.Context) (*session, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return s, nil
	}
	p.mu.Unlock()
	id, err := p.register(ctx)
	if err != nil {
		return nil, err
	}
	return &session{id: id}, nil
}

// put returns a session whose last command has a final answer.
func (p *sessionPool) put(s *session) {
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

// write runs one write under a session of the pool. send is given the
// session's id and the write's sequence number; every copy it sends must
// carry them, so the state machine applies the write at most once. It
// reports whether the cluster gave a final answer, and the write's error.
//
// A session goes back to the pool only after a final answer: without one
// the write may still be applied, and a later write on the session could be
// refused as stale. A write refused because its session expired is sent
// again under a new session only when send says no copy of it can have run
// (the error does not match ErrOutcomeUnknown): the session expired while
// idle. Otherwise the refusal means an earlier copy may have run before the
// expiry, and running it again could undo a write acknowledged since; the
// caller gets ErrOutcomeUnknown instead.
func (p *sessionPool) write(ctx context.Context, send func(ctx context.Context, clientID, seq uint64) (final bool, err error)) error {
	for fresh := 1; ; fresh++ {
		sess, err := p.get(ctx)
		if err != nil {
			return err
		}
		seq := sess.next()
		final, err := send(ctx, sess.id, seq)
		switch {
		case !final:
			return err
		case errors.Is(err, ErrSessionExpired) && !errors.Is(err, ErrOutcomeUnknown) && fresh < maxFreshSessions:
			continue
		case errors.Is(err, ErrSessionExpired), errors.Is(err, ErrStaleRequest):
			return err // the session is of no further use
		}
		p.put(sess)
		return err
	}
}
