package raftkv

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

// A client session is what makes a retried write apply exactly once: the
// state machine remembers each session's last sequence number and answer.
// It allows one command in flight per session, so the DB keeps a pool and
// gives each concurrent call a session of its own.

type session struct {
	id  uint64
	seq uint64
}

func (s *session) next() uint64 {
	s.seq++
	return s.seq
}

type sessionPool struct {
	mu   sync.Mutex
	free []*session
}

func (p *sessionPool) get() (*session, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return s, nil
	}
	p.mu.Unlock()
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("raftkv: new client session: %w", err)
	}
	// Random ids keep sessions of different processes apart; 0 means "no
	// session" to the state machine.
	return &session{id: binary.BigEndian.Uint64(b[:]) | 1}, nil
}

// put returns a session whose last command has a final answer.
func (p *sessionPool) put(s *session) {
	p.mu.Lock()
	p.free = append(p.free, s)
	p.mu.Unlock()
}

// write runs one write under a session of the pool: send is given the
// session's id and the write's sequence number, and reports whether the
// cluster gave a final answer. A retry inside send must reuse them, so the
// state machine applies the write at most once. A session goes back to the
// pool only after a final answer: without one the write may still be
// applied, and a later write on the session could be refused as stale. A
// write refused because its idle session expired was not executed, so it is
// sent again under a fresh session.
func (p *sessionPool) write(send func(clientID, seq uint64) (final bool, err error)) error {
	for {
		sess, err := p.get()
		if err != nil {
			return err
		}
		seq := sess.next()
		final, err := send(sess.id, seq)
		if !final {
			return err
		}
		if errors.Is(err, ErrSessionExpired) && seq > 1 {
			continue
		}
		p.put(sess)
		return err
	}
}
