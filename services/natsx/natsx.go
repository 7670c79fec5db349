// Package natsx runs the embedded NATS server of the all-in-one sipd and
// connects services to NATS.
package natsx

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Embedded is an in-process NATS server.
type Embedded struct {
	srv   *server.Server
	ready chan struct{}
	log   *slog.Logger
}

// NewEmbedded configures an embedded server on listen (host:port); a
// non-empty storeDir turns JetStream on. Nothing starts until Run.
func NewEmbedded(listen, storeDir string, logger *slog.Logger) (*Embedded, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("parsing nats listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("parsing nats port %q: %w", portStr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	opts := &server.Options{
		ServerName: "sipd",
		Host:       host,
		Port:       port,
		NoSigs:     true,
		NoLog:      true,
		JetStream:  storeDir != "",
		StoreDir:   storeDir,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded nats: %w", err)
	}
	return &Embedded{srv: srv, ready: make(chan struct{}), log: logger}, nil
}

// Ready is closed once the server accepts connections.
func (e *Embedded) Ready() <-chan struct{} { return e.ready }

// ClientURL is the URL clients connect to, valid after Ready.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Run starts the server and shuts it down when ctx ends.
func (e *Embedded) Run(ctx context.Context) error {
	e.srv.Start()
	if !e.srv.ReadyForConnections(10 * time.Second) {
		e.srv.Shutdown()
		return fmt.Errorf("starting embedded nats: not ready within 10s")
	}
	close(e.ready)
	e.log.Info("nats listening", "url", e.srv.ClientURL(), "jetstream", e.srv.JetStreamEnabled())
	<-ctx.Done()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	return nil
}

// Connect joins a NATS server, retrying in the background if it is not up
// yet, so a service can start before NATS does.
func Connect(url, name string, logger *slog.Logger) (*nats.Conn, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { logger.Info("nats reconnected", "url", c.ConnectedUrl()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("connecting to nats %s: %w", url, err)
	}
	return nc, nil
}
