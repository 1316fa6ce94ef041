package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/raftkv/raftkv"
	"github.com/raftkv/raftkv/config"
	"google.golang.org/grpc"
)

// serve runs node --id of the cluster --config describes until SIGINT or
// SIGTERM, serving peers on its port and clients on its clientPort; with
// --join, as a new node joining a running cluster.
func serve(args []string, stderr io.Writer) int {
	fs := newFlagSet("serve", "raftkv serve --config FILE --id N [--data DIR] [--join]",
		"Run node N of the cluster FILE describes until SIGINT or SIGTERM: Raft\n"+
			"traffic on its port, the client API on its clientPort. FILE's servers\n"+
			"start a new cluster; once a node has data it follows its data, not FILE.\n"+
			"With --join, node N (new, on an empty data directory) joins a running\n"+
			"cluster instead: it waits until 'raftkv member add N --peer ...' adds it,\n"+
			"then catches up. FILE then lists the cluster's members and node N.\n"+
			"Exit codes: 0 stopped cleanly, 1 failure (e.g. a port in use), 2 usage or\n"+
			"configuration error.\n", stderr)
	cfgPath := fs.String("config", "", "cluster configuration file (required)")
	id := fs.Uint64("id", 0, "id of the node to run (required)")
	data := fs.String("data", "", "data directory root; the node keeps its data in DIR/node<id> (default: the config's persistPath)")
	join := fs.Bool("join", false, "join a running cluster as a new node (see above)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *cfgPath == "" || *id == 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "raftkv serve: --config FILE and --id N are required, and nothing else")
		fs.Usage()
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv serve: %v\n", err)
		return exitUsage
	}
	srv, ok := cfg.Server(*id)
	if !ok {
		fmt.Fprintf(stderr, "raftkv serve: node %d is not in %s\n", *id, *cfgPath)
		return exitUsage
	}
	if *data != "" {
		cfg.PersistPath = *data
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()}))

	// Claim the client port first: failing here costs nothing.
	clientAddr := net.JoinHostPort(srv.Address, strconv.Itoa(srv.ClientPort))
	lis, err := net.Listen("tcp", clientAddr)
	if err != nil {
		fmt.Fprintf(stderr, "raftkv serve: client port: %v\n", err)
		return exitFailure
	}
	opts := []raftkv.Option{raftkv.WithConfig(cfg), raftkv.WithNodes(*id), raftkv.WithLogger(logger)}
	if *join {
		opts = append(opts, raftkv.WithJoin())
	}
	var metricsLis net.Listener
	if srv.MetricsPort != 0 {
		metricsAddr := net.JoinHostPort(srv.Address, strconv.Itoa(srv.MetricsPort))
		if metricsLis, err = net.Listen("tcp", metricsAddr); err != nil {
			lis.Close()
			fmt.Fprintf(stderr, "raftkv serve: metrics port: %v\n", err)
			return exitFailure
		}
		opts = append(opts, raftkv.WithMetrics())
	}
	db, err := raftkv.Open(opts...)
	if err != nil {
		lis.Close()
		if metricsLis != nil {
			metricsLis.Close()
		}
		fmt.Fprintf(stderr, "raftkv serve: %v\n", err)
		return exitFailure
	}
	if metricsLis != nil {
		hs := &http.Server{Handler: db.MetricsHandler(), ReadHeaderTimeout: 5 * time.Second}
		go hs.Serve(metricsLis)
		defer hs.Close()
	}
	gs := grpc.NewServer(raftkv.ClientAPIServerOptions(db)...)
	raftkv.RegisterClientAPI(gs, db)
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	// Catch the signals before announcing "ready": whoever waits for that
	// line may send SIGTERM at once, which must still stop us cleanly.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	fmt.Fprintf(stderr, "raftkv: node %d of cluster %q ready: peers at %s, clients at %s, data in %s\n",
		*id, cfg.ClusterID, cfg.RemoteAddr(*id), clientAddr, cfg.DataDir(*id))

	code := exitOK
	select {
	case s := <-sigs:
		fmt.Fprintf(stderr, "raftkv: node %d stopping (%v)\n", *id, s)
	case err := <-served:
		fmt.Fprintf(stderr, "raftkv serve: client API stopped: %v\n", err)
		code = exitFailure
	}
	stopGRPC(gs, 5*time.Second)
	if err := db.Close(); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(stderr, "raftkv serve: close: %v\n", err)
		code = exitFailure
	}
	fmt.Fprintf(stderr, "raftkv: node %d stopped\n", *id)
	return code
}

// stopGRPC lets in-flight client calls finish, within a bound.
func stopGRPC(s *grpc.Server, within time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(within):
		s.Stop()
	}
}
