package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	paremote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// Defaults for options. Together they keep a full writer batch
// (defaultWriterBatchSize × defaultMaxMessageSize = 32 MiB) at half of the
// gRPC receive limit. raftkv.Open does not rely on them: it passes the
// message, batch and receive limits derived from the configuration's
// maxValueSize (internal/limits).
const (
	// defaultMaxRecvMsgSize is the gRPC server's receive limit. It applies
	// to a whole protoactor batch, not to one message.
	defaultMaxRecvMsgSize = 64 << 20
	// defaultMaxMessageSize is the largest encoded message the application
	// promises to send (an AppendEntries batch, a snapshot chunk).
	defaultMaxMessageSize = 1 << 20
	// defaultWriterBatchSize is how many queued messages protoactor packs
	// into one gRPC message.
	defaultWriterBatchSize = 32
	// defaultWriterQueueSize is the initial capacity of each peer's outbound
	// ring buffer (protoactor's default, 1,000,000, preallocates 16 MB per
	// peer). The ring still grows on demand.
	defaultWriterQueueSize = 1024
	// defaultKeepaliveTime is how long a connection may be idle before the
	// client pings; gRPC refuses less than 10 s.
	defaultKeepaliveTime = 10 * time.Second
	// defaultKeepaliveTimeout is how long a ping may go unanswered before
	// the connection is closed and protoactor reports the endpoint lost.
	defaultKeepaliveTimeout = 3 * time.Second
)

// minKeepaliveTime is gRPC's floor for client keepalive pings; the server
// enforcement policy below admits pings this frequent.
const minKeepaliveTime = 10 * time.Second

// batchOverhead bounds the per-message framing protoactor adds in a batch
// (envelope fields, type name and target PID tables).
const batchOverhead = 1 << 10

// maxRetryCount is protoactor's connect attempts per endpoint cycle. 1 means:
// a down peer's messages are dropped after at most about 2 s, no gRPC
// connections leak, and reconnect takes at most about 2 s. 0 would never
// connect at all.
const maxRetryCount = 1

var (
	// ErrAddressInUse is wrapped by Start's error when the listen address is
	// taken.
	ErrAddressInUse = errors.New("remote: address already in use")
	// ErrInvalidOptions is wrapped by Start's error when the arguments or
	// options cannot work.
	ErrInvalidOptions = errors.New("remote: invalid options")
	// errAlreadyStarted is wrapped by Start's error when the actor system
	// already has a Remote.
	errAlreadyStarted = errors.New("remote: actor system already has a remote")
)

// options configure Start. The zero value is not useful; Start begins from
// defaultOptions and applies the Option functions. Only the limits that
// raftkv.Open derives from the configuration have exported With… options;
// the rest are for this package's tests.
type options struct {
	// AdvertisedAddress is the exact "host:port" peers use to reach this
	// node; it becomes the Address of every local PID. PIDs must match it
	// byte for byte: a peer sending to "localhost:9001" when this node
	// advertises "127.0.0.1:9001" never gets its message through. Empty
	// means the listen address as bound (e.g. "127.0.0.1:9001"), which
	// requires a concrete host. It must name a port when set, so it cannot
	// be combined with port 0.
	AdvertisedAddress string
	// MaxRecvMsgSize is the gRPC server's receive limit in bytes, per
	// protoactor batch.
	MaxRecvMsgSize int
	// MaxMessageSize is the largest encoded message the application will
	// send, in bytes. The transport does not enforce it; Start checks that a
	// full batch of such messages fits MaxRecvMsgSize, and the actor layer
	// must keep entry batches and snapshot chunks within it.
	MaxMessageSize int
	// WriterBatchSize is the most messages protoactor sends to one peer in
	// one gRPC message.
	WriterBatchSize int
	// WriterQueueSize is the initial capacity of each peer's outbound queue.
	WriterQueueSize int
	// KeepaliveTime is the idle time after which the client side of a
	// connection pings the peer (at least 10 s).
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long an unanswered ping takes to close the
	// connection.
	KeepaliveTimeout time.Duration
}

// defaultOptions returns the options Start uses before applying any Option.
func defaultOptions() options {
	return options{
		MaxRecvMsgSize:   defaultMaxRecvMsgSize,
		MaxMessageSize:   defaultMaxMessageSize,
		WriterBatchSize:  defaultWriterBatchSize,
		WriterQueueSize:  defaultWriterQueueSize,
		KeepaliveTime:    defaultKeepaliveTime,
		KeepaliveTimeout: defaultKeepaliveTimeout,
	}
}

// Option changes one of the options.
type Option func(*options)

// withAdvertisedAddress sets options.AdvertisedAddress.
func withAdvertisedAddress(hostPort string) Option {
	return func(o *options) { o.AdvertisedAddress = hostPort }
}

// WithMaxRecvMsgSize sets the gRPC server's receive limit, in bytes, which
// applies to a whole protoactor batch (default 64 MiB).
func WithMaxRecvMsgSize(n int) Option { return func(o *options) { o.MaxRecvMsgSize = n } }

// WithMaxMessageSize sets the largest encoded message, in bytes, the
// application promises to send (default 1 MiB); Start checks that a full
// batch of such messages fits the receive limit.
func WithMaxMessageSize(n int) Option { return func(o *options) { o.MaxMessageSize = n } }

// WithWriterBatchSize sets how many queued messages protoactor packs into
// one gRPC message to a peer (default 32).
func WithWriterBatchSize(n int) Option { return func(o *options) { o.WriterBatchSize = n } }

// withWriterQueueSize sets options.WriterQueueSize.
func withWriterQueueSize(n int) Option { return func(o *options) { o.WriterQueueSize = n } }

// withKeepalive sets options.KeepaliveTime and options.KeepaliveTimeout.
func withKeepalive(idle, timeout time.Duration) Option {
	return func(o *options) { o.KeepaliveTime, o.KeepaliveTimeout = idle, timeout }
}

func (o options) validate(host string, port int) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("%w: port %d", ErrInvalidOptions, port)
	}
	if o.AdvertisedAddress == "" {
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			return fmt.Errorf("%w: host %q is not an address peers can dial; listen on a concrete address", ErrInvalidOptions, host)
		}
	} else {
		h, p, err := net.SplitHostPort(o.AdvertisedAddress)
		if err != nil || h == "" {
			return fmt.Errorf("%w: advertised address %q is not host:port", ErrInvalidOptions, o.AdvertisedAddress)
		}
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%w: advertised address %q has no usable port", ErrInvalidOptions, o.AdvertisedAddress)
		}
		if port == 0 {
			return fmt.Errorf("%w: advertised address %q with listen port 0 (the port is not known in advance)", ErrInvalidOptions, o.AdvertisedAddress)
		}
	}
	if o.MaxRecvMsgSize <= 0 || o.MaxMessageSize <= 0 || o.WriterBatchSize <= 0 || o.WriterQueueSize <= 0 {
		return fmt.Errorf("%w: sizes must be positive (max recv %d, max message %d, batch %d, queue %d)",
			ErrInvalidOptions, o.MaxRecvMsgSize, o.MaxMessageSize, o.WriterBatchSize, o.WriterQueueSize)
	}
	if full := int64(o.WriterBatchSize) * int64(o.MaxMessageSize+batchOverhead); full > int64(o.MaxRecvMsgSize) {
		return fmt.Errorf("%w: a full batch (%d × (%d + %d) bytes) exceeds MaxRecvMsgSize %d; the peer would reset the stream and lose the batch",
			ErrInvalidOptions, o.WriterBatchSize, o.MaxMessageSize, batchOverhead, o.MaxRecvMsgSize)
	}
	if o.KeepaliveTime < minKeepaliveTime || o.KeepaliveTimeout <= 0 {
		return fmt.Errorf("%w: keepalive time %v (min %v), timeout %v", ErrInvalidOptions, o.KeepaliveTime, minKeepaliveTime, o.KeepaliveTimeout)
	}
	return nil
}

// Remote is a started protoactor remote: the gRPC server that receives for an
// actor system, and the endpoint writers that send for it.
type Remote struct {
	sys    *actor.ActorSystem
	r      *paremote.Remote
	addr   string
	opts   options
	stop   sync.Once
	doneCh chan struct{}
}

// Start makes sys reachable over the network: it listens on host:port (port
// 0 picks a free port; see Address) and configures protoactor remote for a
// Raft transport. Call it before spawning the actors peers address, since a
// PID takes its address at creation.
//
// Start returns an error wrapping ErrAddressInUse when the port is taken,
// ErrInvalidOptions for unusable arguments, and an error if sys already has
// a Remote; it does not panic. If protoactor itself fails part-way (rare:
// the port taken between Start's check and protoactor's listen), sys is left
// with a half-registered remote and must be discarded.
//
// Run ONE Remote per process (see the package doc): a second one races
// inside gRPC under -race. Nothing here detects it; raftkv.Open never
// starts more than one.
func Start(sys *actor.ActorSystem, host string, port int, opts ...Option) (*Remote, error) {
	if sys == nil {
		return nil, fmt.Errorf("%w: nil actor system", ErrInvalidOptions)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.validate(host, port); err != nil {
		return nil, err
	}
	// (*paremote.Remote).ExtensionID does not use its receiver.
	if sys.Extensions.Get((*paremote.Remote)(nil).ExtensionID()) != nil {
		return nil, fmt.Errorf("%w: system %s, address %s", errAlreadyStarted, sys.ID, sys.Address())
	}

	// protoactor's Config.Address formats "%v:%v", so an IPv6 host needs
	// its brackets here.
	cfgHost := host
	if strings.Contains(host, ":") {
		cfgHost = "[" + host + "]"
	}
	listenAddr := net.JoinHostPort(host, strconv.Itoa(port))

	// protoactor's Remote.Start panics if it cannot listen: try first.
	if l, err := net.Listen("tcp", listenAddr); err != nil {
		return nil, listenError(listenAddr, err)
	} else if err := l.Close(); err != nil {
		return nil, fmt.Errorf("remote: probe listener on %s: %w", listenAddr, err)
	}

	cfgOpts := []paremote.ConfigOption{
		paremote.WithEndpointWriterQueueSize(o.WriterQueueSize),
		paremote.WithEndpointWriterBatchSize(o.WriterBatchSize),
		// WithServerOptions replaces, so every server option goes here.
		paremote.WithServerOptions(
			grpc.MaxRecvMsgSize(o.MaxRecvMsgSize),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
				MinTime:             minKeepaliveTime / 2,
				PermitWithoutStream: true,
			}),
			grpc.KeepaliveParams(keepalive.ServerParameters{
				Time:    o.KeepaliveTime,
				Timeout: o.KeepaliveTimeout,
			}),
		),
		// WithDialOptions replaces protoactor's default (grpc.WithInsecure),
		// so plaintext must be re-added or every connect fails.
		paremote.WithDialOptions(
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithKeepaliveParams(keepalive.ClientParameters{
				Time:                o.KeepaliveTime,
				Timeout:             o.KeepaliveTimeout,
				PermitWithoutStream: true,
			}),
		),
	}
	if o.AdvertisedAddress != "" {
		cfgOpts = append(cfgOpts, paremote.WithAdvertisedHost(o.AdvertisedAddress))
	}
	cfg := paremote.Configure(cfgHost, port, cfgOpts...)
	cfg.MaxRetryCount = maxRetryCount // no With… option exists

	pr := paremote.NewRemote(sys, cfg)
	if err := startRecovering(pr, listenAddr); err != nil {
		return nil, err
	}
	r := &Remote{sys: sys, r: pr, addr: sys.Address(), opts: o, doneCh: make(chan struct{})}
	return r, nil
}

// startRecovering runs protoactor's Start, which panics on failure.
func startRecovering(pr *paremote.Remote, addr string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			perr, ok := p.(error)
			if !ok {
				perr = fmt.Errorf("%v", p)
			}
			if strings.Contains(perr.Error(), "address already in use") {
				err = fmt.Errorf("%w: %s: %w", ErrAddressInUse, addr, perr)
				return
			}
			err = fmt.Errorf("remote: start on %s: %w", addr, perr)
		}
	}()
	pr.Start()
	return nil
}

func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w: %s: %w", ErrAddressInUse, addr, err)
	}
	return fmt.Errorf("remote: listen on %s: %w", addr, err)
}

// Address is the address peers reach this node at, as it appears in every
// local PID: the advertised address, or the bound "host:port" (with the real
// port when Start was given port 0).
func (r *Remote) Address() string { return r.addr }

// endpointSupervisorName is the actor protoactor's remote spawns to own the
// endpoint writers (remote/endpoint_manager.go).
const endpointSupervisorName = "EndpointSupervisor"

// Stop shuts the Remote down: it closes the gRPC server, which ends every
// inbound stream and frees the port, then stops the endpoint writers that
// carry outbound traffic. Stop the actors that send first. It does not use
// protoactor's graceful Shutdown(true): at the pinned version that writes
// the endpoint reader's "suspended" flag while inbound streams read it,
// a data race under -race whenever peers are still connected. Messages in
// flight may be lost, which Raft tolerates. If ctx ends first, Stop returns
// an error wrapping ctx.Err() and the rest finishes in the background.
// Stop may be called more than once.
func (r *Remote) Stop(ctx context.Context) error {
	r.stop.Do(func() {
		go func() {
			defer close(r.doneCh)
			r.r.Shutdown(false)
			writers := actor.NewPID(r.sys.Address(), endpointSupervisorName)
			if err := r.sys.Root.StopFuture(writers).Wait(); err != nil {
				r.sys.Logger().Debug("stop endpoint writers", "err", err)
			}
		}()
	})
	select {
	case <-r.doneCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("remote: stop %s: %w", r.addr, ctx.Err())
	}
}
