package raftkv

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// The retry loop the router and the Client share: an answer ends it with
// the answer, whatever it is; Close ends it with ErrClosed; the end of the
// context ends it with ErrUnavailable, wrapping the context's error and
// naming the last attempt's failure.
func TestRetryLoop(t *testing.T) {
	notFound := errors.New("the answer")
	tries := 0
	final, err := retry(context.Background(), time.Minute, nil, func(context.Context) (next, error) {
		if tries++; tries < 3 {
			return again, errors.New("node down")
		}
		return answered, notFound
	})
	if !final || err != notFound || tries != 3 {
		t.Fatalf("answered on the third try: final %v, err %v, %d tries; want true, the answer, 3", final, err, tries)
	}

	closing := make(chan struct{})
	var closeOnce sync.Once
	bounded, stop := context.WithTimeout(context.Background(), 10*time.Second) // only if Close were ignored
	defer stop()
	final, err = retry(bounded, time.Minute, closing, func(context.Context) (next, error) {
		closeOnce.Do(func() { close(closing) })
		return later, errors.New("no leader") // the pause ends at Close
	})
	if final || !errors.Is(err, ErrClosed) {
		t.Fatalf("closed while retrying: final %v, err %v; want ErrClosed", final, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	final, err = retry(ctx, time.Minute, nil, func(context.Context) (next, error) {
		cancel()
		return again, errors.New("node 2 answered NOT_LEADER")
	})
	if final || !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "NOT_LEADER") {
		t.Fatalf("context ended: final %v, err %v; want ErrUnavailable wrapping context.Canceled, naming the last failure", final, err)
	}

	// A context without a deadline gets the timeout.
	final, err = retry(context.Background(), time.Nanosecond, nil, func(ctx context.Context) (next, error) {
		<-ctx.Done()
		return again, nil
	})
	if final || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("bounded by the timeout: final %v, err %v; want ErrUnavailable wrapping DeadlineExceeded", final, err)
	}
}
