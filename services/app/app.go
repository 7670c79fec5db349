// Package app assembles sipd's processes: the all-in-one sipd and each
// separate service, from one configuration format.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/sipd/sipd/edge"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/registrar/redisstore"
	"github.com/sipd/sipd/router"
	"github.com/sipd/sipd/services/config"
	"github.com/sipd/sipd/services/grpcx"
	"github.com/sipd/sipd/services/natsx"
	"github.com/sipd/sipd/services/telemetry"
)

// Main is the whole main function of a sipd binary: it parses flags, loads
// and validates the configuration, and runs role until SIGINT or SIGTERM.
// It returns the process exit code.
func Main(role config.Role, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(string(role), flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML); empty uses the built-in defaults")
	check := fs.Bool("check", false, "validate the configuration, print every problem, and exit")
	var listen *string
	if role == config.RoleSipd || role == config.RoleEdge {
		listen = fs.String("listen", "", "SIP listeners overriding the file's edge.listen, e.g. udp:127.0.0.1:5080,tcp:127.0.0.1:5080")
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", role, err)
		return 1
	}
	if listen != nil && *listen != "" {
		cfg.OverrideListen(*listen)
	}
	if err := cfg.Validate(role); err != nil {
		fmt.Fprintf(stderr, "%s: invalid configuration:\n", role)
		for _, line := range splitLines(err.Error()) {
			fmt.Fprintf(stderr, "  - %s\n", line)
		}
		return 1
	}
	if *check {
		fmt.Fprintf(stderr, "%s: configuration ok\n", role)
		return 0
	}
	logger := telemetry.NewLogger(cfg.Log)
	slog.SetDefault(logger)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, cfg, *path, role, logger); err != nil {
		logger.Error("exiting", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Run runs the components of role until ctx ends, and returns after all of
// them have stopped. path is the configuration file cfg came from, re-read
// by the router's Reload; empty (built-in defaults) leaves Reload
// unavailable.
func Run(ctx context.Context, cfg *config.Config, path string, role config.Role, logger *slog.Logger) error {
	tel, err := telemetry.New(cfg.Telemetry, "sipd-"+string(role), logger)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return tel.Run(ctx) })

	var events registrar.Publisher
	switch {
	case role == config.RoleSipd && cfg.NATS.Listen != "":
		emb, err := natsx.NewEmbedded(cfg.NATS.Listen, cfg.NATS.StoreDir, logger)
		if err != nil {
			return errors.Join(err, stopAll(g))
		}
		g.Go(func() error { return emb.Run(ctx) })
		select {
		case <-emb.Ready():
		case <-ctx.Done():
			return g.Wait()
		}
		nc, err := natsx.Connect(emb.ClientURL(), "sipd", logger)
		if err != nil {
			return errors.Join(err, stopAll(g))
		}
		defer nc.Close()
		events = nc
	case cfg.NATS.URL != "":
		nc, err := natsx.Connect(cfg.NATS.URL, "sipd-"+string(role), logger)
		if err != nil {
			return errors.Join(err, stopAll(g))
		}
		defer nc.Close()
		events = nc
	}

	var servers []*grpcx.Server
	if role == config.RoleSipd || role == config.RoleRegistrar {
		store, closeStore, err := newStore(cfg.Registrar)
		if err != nil {
			return errors.Join(err, stopAll(g))
		}
		defer closeStore()
		reg, err := registrar.New(cfg.Registrar, registrar.Deps{
			Store:      store,
			Events:     events,
			Logger:     logger.With("service", "registrar"),
			Registerer: tel.Registry,
		})
		if err != nil {
			return errors.Join(fmt.Errorf("creating registrar: %w", err), stopAll(g))
		}
		srv := grpcx.NewServer(cfg.GRPC.RegistrarListen, logger.With("service", "registrar"))
		registrarv1.RegisterRegistrarServiceServer(srv, reg)
		g.Go(func() error { return reg.Run(ctx) })
		g.Go(func() error { return srv.Run(ctx) })
		servers = append(servers, srv)
	}
	if role == config.RoleSipd || role == config.RoleRouter {
		conn, err := grpcx.Dial(cfg.GRPC.RegistrarAddress)
		if err != nil {
			return errors.Join(err, stopAll(g))
		}
		defer conn.Close()
		rt, err := router.New(cfg.Router, router.Deps{
			Locator:        registrarv1.NewRegistrarServiceClient(conn),
			Logger:         logger.With("service", "router"),
			Registerer:     tel.Registry,
			TracerProvider: tel.TracerProvider,
			Reload:         reloadRoutes(path),
		})
		if err != nil {
			return errors.Join(fmt.Errorf("creating router: %w", err), stopAll(g))
		}
		srv := grpcx.NewServer(cfg.GRPC.RouterListen, logger.With("service", "router"))
		routerv1.RegisterRouterServiceServer(srv, rt)
		g.Go(func() error { return rt.Run(ctx) })
		g.Go(func() error { return srv.Run(ctx) })
		servers = append(servers, srv)
	}
	if role == config.RoleSipd || role == config.RoleEdge {
		// In one process, let the services listen before SIP traffic comes.
		for _, s := range servers {
			select {
			case <-s.Ready():
			case <-ctx.Done():
				return g.Wait()
			}
		}
		regConn, err := grpcx.Dial(cfg.GRPC.RegistrarAddress)
		if err != nil {
			return errors.Join(err, stopAll(g))
		}
		defer regConn.Close()
		rtConn, err := grpcx.Dial(cfg.GRPC.RouterAddress)
		if err != nil {
			return errors.Join(err, stopAll(g))
		}
		defer rtConn.Close()
		e, err := edge.New(cfg.Edge, edge.Deps{
			Registrar:      registrarv1.NewRegistrarServiceClient(regConn),
			Router:         routerv1.NewRouterServiceClient(rtConn),
			Logger:         logger.With("service", "edge"),
			Registerer:     tel.Registry,
			TracerProvider: tel.TracerProvider,
		})
		if err != nil {
			return errors.Join(fmt.Errorf("creating edge: %w", err), stopAll(g))
		}
		g.Go(func() error { return e.Run(ctx) })
	}
	logger.Info("starting", "role", string(role))
	return g.Wait()
}

// reloadRoutes returns the router's Reload: it loads and validates the
// file at path again (as the router role: command-line overrides such as
// -listen do not matter here) and returns its static routes. It is nil for
// no file.
func reloadRoutes(path string) func() ([]router.StaticRoute, error) {
	if path == "" {
		return nil
	}
	return func() ([]router.StaticRoute, error) {
		cfg, err := config.Load(path)
		if err != nil {
			return nil, err
		}
		if err := cfg.Validate(config.RoleRouter); err != nil {
			return nil, fmt.Errorf("validating %s: %w", path, err)
		}
		return cfg.Router.StaticRoutes, nil
	}
}

// newStore returns the registrar's store as configured, and how to close
// it. Neither connects: the Redis store dials on its first operation.
func newStore(cfg registrar.Config) (registrar.Store, func(), error) {
	if cfg.Store != registrar.StoreRedis {
		return registrar.NewMemoryStore(), func() {}, nil
	}
	s, err := redisstore.New(cfg.Redis)
	if err != nil {
		return nil, nil, fmt.Errorf("creating redis store: %w", err)
	}
	return s, func() { _ = s.Close() }, nil
}

// errStopping cancels the group's context by failing one of its members.
var errStopping = errors.New("app: stopping after a start-up error")

func stopAll(g *errgroup.Group) error {
	g.Go(func() error { return errStopping })
	if err := g.Wait(); err != nil && !errors.Is(err, errStopping) {
		return err
	}
	return nil
}
