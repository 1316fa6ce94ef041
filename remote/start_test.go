package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	paremote "github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/raftkv/raftkv/raftlogic"
	"github.com/raftkv/raftkv/remote/raftpb"
)

// The test binary runs ONE Remote, shared by every test and stopped in
// TestMain: protoactor's Remote.Start writes a gRPC global, so a second
// Remote in the process (even one started after the first was stopped,
// while its goroutines wind down) is a data race under -race. Wire-level
// tests therefore talk to it with a raw gRPC client or a fake peer server,
// both created after the Remote started.
var shared struct {
	once sync.Once
	r    *Remote
	err  error
}

func testRemote(t *testing.T) *Remote {
	t.Helper()
	shared.once.Do(func() {
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		sys := actor.NewActorSystem(actor.WithLoggerFactory(NewLoggerFactory(logger)))
		shared.r, shared.err = Start(sys, "127.0.0.1", 0)
	})
	if shared.err != nil {
		t.Fatalf("Start: %v", shared.err)
	}
	return shared.r
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := shared.r.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "Stop:", err)
			code = 1
		}
		cancel()
	}
	os.Exit(code)
}

// collector forwards every RaftEnvelope it receives to ch.
type collector struct{ ch chan *raftpb.RaftEnvelope }

func (c *collector) Receive(ctx actor.Context) {
	if e, ok := ctx.Message().(*raftpb.RaftEnvelope); ok {
		c.ch <- e
	}
}

// sendTo asks a forwarder actor to send msg to pid.
type sendTo struct {
	pid *actor.PID
	msg proto.Message
}

type forwarder struct{}

func (forwarder) Receive(ctx actor.Context) {
	if s, ok := ctx.Message().(*sendTo); ok {
		ctx.Send(s.pid, s.msg)
	}
}

func spawnCollector(t *testing.T, r *Remote, name string) chan *raftpb.RaftEnvelope {
	t.Helper()
	ch := make(chan *raftpb.RaftEnvelope, 16)
	pid, err := r.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return &collector{ch} }), name)
	if err != nil {
		t.Fatalf("spawn %s: %v", name, err)
	}
	t.Cleanup(func() { _ = r.sys.Root.StopFuture(pid).Wait() })
	return ch
}

func spawnForwarder(t *testing.T, r *Remote, name string) *actor.PID {
	t.Helper()
	pid, err := r.sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return forwarder{} }), name)
	if err != nil {
		t.Fatalf("spawn %s: %v", name, err)
	}
	t.Cleanup(func() { _ = r.sys.Root.StopFuture(pid).Wait() })
	return pid
}

func await(t *testing.T, ch <-chan *raftpb.RaftEnvelope) *raftpb.RaftEnvelope {
	t.Helper()
	select {
	case e := <-ch:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no message delivered within 10 s")
		return nil
	}
}

func checkEnvelope(t *testing.T, e *raftpb.RaftEnvelope, want raftlogic.Message) {
	t.Helper()
	got, err := OpenEnvelope("test-cluster", e)
	if err != nil {
		t.Fatalf("OpenEnvelope: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("delivered %+v, want %+v", got, want)
	}
}

func TestStartAddress(t *testing.T) {
	r := testRemote(t)
	host, port, err := net.SplitHostPort(r.Address())
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Fatalf("Address() = %q, want 127.0.0.1:<picked port>", r.Address())
	}
	if r.sys.Address() != r.Address() {
		t.Errorf("actor system address %q != %q", r.sys.Address(), r.Address())
	}
	if got := r.opts; got != defaultOptions() {
		t.Errorf("Options() = %+v, want defaults", got)
	}
}

// TestDeliveryByAddress sends between two named actors of the one system,
// addressed as peers address them: actor.NewPID(r.Address(), name). The
// address is our own, so protoactor delivers locally (no gRPC) — which is
// what lets one process host several nodes on one Remote.
func TestDeliveryByAddress(t *testing.T) {
	r := testRemote(t)
	ch := spawnCollector(t, r, "local-b")
	a := spawnForwarder(t, r, "local-a")
	m := sampleMessages()[0]
	r.sys.Root.Send(a, &sendTo{pid: actor.NewPID(r.Address(), "local-b"), msg: NewEnvelope("test-cluster", m)})
	checkEnvelope(t, await(t, ch), m)
}

// TestWireInbound speaks protoactor's Remoting protocol to the Remote over a
// real gRPC connection, as a peer's endpoint writer does: the envelope goes
// through gRPC, protoactor's type lookup of "raftkv.v1.RaftEnvelope" and
// proto decoding to the named actor. One message is 6 MiB, over gRPC's
// default 4 MiB limit, to show MaxRecvMsgSize is in effect.
func TestWireInbound(t *testing.T) {
	r := testRemote(t)
	ch := spawnCollector(t, r, "wire-in")

	conn, err := grpc.NewClient(r.Address(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := paremote.NewRemotingClient(conn).Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stream.CloseSend() }()
	err = stream.Send(&paremote.RemoteMessage{MessageType: &paremote.RemoteMessage_ConnectRequest{
		ConnectRequest: &paremote.ConnectRequest{ConnectionType: &paremote.ConnectRequest_ServerConnection{
			ServerConnection: &paremote.ServerConnection{SystemId: "fake-peer", Address: "127.0.0.1:1"},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetConnectResponse() == nil || resp.GetConnectResponse().GetBlocked() {
		t.Fatalf("connect response = %v", resp)
	}

	small := sampleMessages()[0]
	big := raftlogic.Message{Type: raftlogic.MsgApp, From: 1, To: 2, Term: 4, Index: 7, LogTerm: 3, Commit: 6,
		Entries: []raftlogic.Entry{{Index: 8, Term: 4, Data: bytes.Repeat([]byte{7}, 6<<20)}}}
	for _, m := range []raftlogic.Message{small, big} {
		data, err := proto.Marshal(NewEnvelope("test-cluster", m))
		if err != nil {
			t.Fatal(err)
		}
		err = stream.Send(&paremote.RemoteMessage{MessageType: &paremote.RemoteMessage_MessageBatch{
			MessageBatch: &paremote.MessageBatch{
				TypeNames: []string{string(proto.MessageName(&raftpb.RaftEnvelope{}))},
				Targets:   []*actor.PID{actor.NewPID(r.Address(), "wire-in")},
				Envelopes: []*paremote.MessageEnvelope{{TypeId: 0, Target: 0, MessageData: data}},
			},
		}})
		if err != nil {
			t.Fatal(err)
		}
		checkEnvelope(t, await(t, ch), m)
	}
}

// fakePeer is a gRPC server speaking protoactor's Remoting protocol: it
// accepts connections and decodes what a Remote's endpoint writer sends.
type fakePeer struct {
	paremote.UnimplementedRemotingServer
	got chan proto.Message
}

func (f *fakePeer) Receive(stream paremote.Remoting_ReceiveServer) error {
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		switch m := msg.MessageType.(type) {
		case *paremote.RemoteMessage_ConnectRequest:
			if err := stream.Send(&paremote.RemoteMessage{MessageType: &paremote.RemoteMessage_ConnectResponse{
				ConnectResponse: &paremote.ConnectResponse{MemberId: "fake-peer"},
			}}); err != nil {
				return err
			}
		case *paremote.RemoteMessage_MessageBatch:
			for _, e := range m.MessageBatch.GetEnvelopes() {
				mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(m.MessageBatch.TypeNames[e.TypeId]))
				if err != nil {
					return err
				}
				pm := mt.New().Interface()
				if err := proto.Unmarshal(e.MessageData, pm); err != nil {
					return err
				}
				f.got <- pm
			}
		}
	}
}

// TestWireOutbound has the Remote send to a fake peer over gRPC: the
// endpoint writer must connect with Start's dial options (plaintext
// re-added) and put the envelope on the wire under its proto name.
func TestWireOutbound(t *testing.T) {
	r := testRemote(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	peer := &fakePeer{got: make(chan proto.Message, 4)}
	paremote.RegisterRemotingServer(srv, peer)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	a := spawnForwarder(t, r, "wire-out")
	m := sampleMessages()[9] // MsgSnap
	r.sys.Root.Send(a, &sendTo{pid: actor.NewPID(lis.Addr().String(), "node"), msg: NewEnvelope("test-cluster", m)})
	select {
	case pm := <-peer.got:
		e, ok := pm.(*raftpb.RaftEnvelope)
		if !ok {
			t.Fatalf("peer got %T", pm)
		}
		checkEnvelope(t, e, m)
	case <-time.After(10 * time.Second):
		t.Fatal("peer got nothing within 10 s")
	}
}

func TestStartAddressInUse(t *testing.T) {
	r := testRemote(t)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	taken := lis.Addr().(*net.TCPAddr).Port
	_, ownPort, _ := net.SplitHostPort(r.Address())
	own, _ := strconv.Atoi(ownPort)

	for _, port := range []int{taken, own} {
		sys := actor.NewActorSystem(actor.WithLoggerFactory(NewLoggerFactory(slog.New(slog.DiscardHandler))))
		got, err := Start(sys, "127.0.0.1", port)
		if !errors.Is(err, ErrAddressInUse) {
			t.Fatalf("Start on taken port %d = %v, %v; want ErrAddressInUse", port, got, err)
		}
		if want := "127.0.0.1:" + strconv.Itoa(port); !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
		if sys.Extensions.Get((*paremote.Remote)(nil).ExtensionID()) != nil {
			t.Error("a failed Start left a Remote registered on the actor system")
		}
	}
}

func TestStartInvalid(t *testing.T) {
	r := testRemote(t)
	newSys := func() *actor.ActorSystem {
		return actor.NewActorSystem(actor.WithLoggerFactory(NewLoggerFactory(slog.New(slog.DiscardHandler))))
	}
	cases := []struct {
		name string
		sys  *actor.ActorSystem
		host string
		port int
		opts []Option
		want error
	}{
		{"nil system", nil, "127.0.0.1", 0, nil, ErrInvalidOptions},
		{"wildcard host without advertised address", newSys(), "0.0.0.0", 0, nil, ErrInvalidOptions},
		{"empty host without advertised address", newSys(), "", 0, nil, ErrInvalidOptions},
		{"advertised address with port 0", newSys(), "0.0.0.0", 0, []Option{withAdvertisedAddress("10.0.0.1:9000")}, ErrInvalidOptions},
		{"advertised address without port", newSys(), "0.0.0.0", 9000, []Option{withAdvertisedAddress("10.0.0.1")}, ErrInvalidOptions},
		{"bad port", newSys(), "127.0.0.1", 70000, nil, ErrInvalidOptions},
		{"batch over receive limit", newSys(), "127.0.0.1", 0, []Option{WithWriterBatchSize(64), WithMaxMessageSize(1 << 20)}, ErrInvalidOptions},
		{"zero queue", newSys(), "127.0.0.1", 0, []Option{withWriterQueueSize(0)}, ErrInvalidOptions},
		{"keepalive under gRPC's floor", newSys(), "127.0.0.1", 0, []Option{withKeepalive(time.Second, time.Second)}, ErrInvalidOptions},
		{"system already has a remote", r.sys, "127.0.0.1", 0, nil, errAlreadyStarted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Start(c.sys, c.host, c.port, c.opts...)
			if !errors.Is(err, c.want) {
				t.Fatalf("Start = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestLoggerFactoryLevels(t *testing.T) {
	for _, c := range []struct {
		level     slog.Level
		wantInfo  bool
		infoLevel string
	}{
		{slog.LevelInfo, false, ""},
		{slog.LevelDebug, true, "level=DEBUG"},
	} {
		var buf syncBuffer
		l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: c.level}))
		sys := actor.NewActorSystem(actor.WithLoggerFactory(NewLoggerFactory(l)))
		sys.Logger().Info("chatty protoactor info")
		sys.Logger().Warn("protoactor warning")
		sys.Logger().Error("protoactor error")
		out := buf.String()
		if got := strings.Contains(out, "chatty protoactor info"); got != c.wantInfo {
			t.Errorf("app level %v: protoactor INFO shown = %v, want %v\n%s", c.level, got, c.wantInfo, out)
		}
		if c.wantInfo && !strings.Contains(out, c.infoLevel+` msg="chatty protoactor info"`) {
			t.Errorf("app level %v: protoactor INFO not demoted to DEBUG:\n%s", c.level, out)
		}
		for _, want := range []string{`level=WARN msg="protoactor warning"`, `level=ERROR msg="protoactor error"`, "component=protoactor", "actor_system=" + sys.ID} {
			if !strings.Contains(out, want) {
				t.Errorf("app level %v: log lacks %q:\n%s", c.level, want, out)
			}
		}
	}
}

type panicker struct{}

func (panicker) Receive(ctx actor.Context) {
	if s, ok := ctx.Message().(string); ok && s == "boom" {
		panic("boom")
	}
}

func TestWatchFailures(t *testing.T) {
	var buf syncBuffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sys := actor.NewActorSystem(actor.WithLoggerFactory(NewLoggerFactory(l)))
	stop := WatchFailures(sys, l)
	defer stop()
	pid, err := sys.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return panicker{} }), "panicker")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sys.Root.StopFuture(pid).Wait() }()
	sys.Root.Send(pid, "boom")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), `msg="actor failed"`) {
		if time.Now().After(deadline) {
			t.Fatalf("no WARN for the actor panic; log:\n%s", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := buf.String()
	for _, want := range []string{"level=WARN", "actor=nonhost/panicker", "reason=boom", "directive=RestartDirective"} {
		if !strings.Contains(out, want) {
			t.Errorf("failure log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Recovering") {
		t.Errorf("protoactor's INFO panic log leaked at app level WARN:\n%s", out)
	}
}
