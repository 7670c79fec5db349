// Package grpcx holds sipd's gRPC plumbing: servers with health, reflection
// and tracing, and clients with tracing.
package grpcx

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"time"
)

// Server is a gRPC server bound to one address.
type Server struct {
	*grpc.Server
	Health *health.Server

	addr   string
	logger *slog.Logger
	ln     net.Listener
	ready  chan struct{}
}

// NewServer returns a gRPC server with tracing, the health service and
// server reflection. Register services on it before Run.
func NewServer(addr string, logger *slog.Logger) *Server {
	s := grpc.NewServer(
		grpc.StatsHandler(otelgrpc.NewServerHandler()),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
	)
	h := health.NewServer()
	healthpb.RegisterHealthServer(s, h)
	reflection.Register(s)
	return &Server{Server: s, Health: h, addr: addr, logger: logger, ready: make(chan struct{})}
}

// Ready is closed once the server is listening.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the bound address, valid after Ready.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run listens and serves until ctx ends, then stops gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listening for grpc on %s: %w", s.addr, err)
	}
	s.ln = ln
	close(s.ready)
	s.logger.Info("grpc listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ln) }()
	select {
	case <-ctx.Done():
		s.Health.Shutdown()
		stopped := make(chan struct{})
		go func() { s.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(5 * time.Second):
			s.Stop()
		}
		<-errc
		return nil
	case err := <-errc:
		return fmt.Errorf("serving grpc on %s: %w", s.addr, err)
	}
}

// Dial returns a client connection to addr with tracing. It connects
// lazily, so a service that is down shows up as call errors, not here.
// A host name is resolved through DNS to every address it has, and calls
// are spread round-robin over them, so scaled replicas behind one name
// (docker compose --scale) all take load.
func Dial(addr string) (*grpc.ClientConn, error) {
	target := addr
	if !strings.Contains(target, "://") {
		target = "dns:///" + target
	}
	conn, err := grpc.NewClient(target,
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler()),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 3 * time.Second, PermitWithoutStream: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	return conn, nil
}
