// Package telemetry sets up a process's logging, Prometheus metrics and
// OpenTelemetry tracing from configuration.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/sipd/sipd/services/config"
)

// NewLogger returns a slog logger writing to standard error.
func NewLogger(c config.Log) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Telemetry holds a process's metrics registry and tracer provider.
type Telemetry struct {
	Registry       *prometheus.Registry
	TracerProvider trace.TracerProvider

	cfg      config.Telemetry
	logger   *slog.Logger
	shutdown func(context.Context) error
	ready    chan struct{}
	addr     net.Addr
}

// New builds the metrics registry (with Go and process collectors) and a
// tracer provider, exporting over OTLP when an endpoint is configured. It
// installs the provider and the W3C trace-context propagator globally so
// gRPC instrumentation carries spans across services.
func New(cfg config.Telemetry, service string, logger *slog.Logger) (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	t := &Telemetry{Registry: reg, cfg: cfg, logger: logger, ready: make(chan struct{}), shutdown: func(context.Context) error { return nil }}
	name := cfg.ServiceName
	if name == "" {
		name = service
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(name))
	opts := []sdktrace.TracerProviderOption{
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*cfg.SampleRatio))),
	}
	if cfg.OTLPEndpoint != "" {
		// The exporter dials lazily; New does no I/O.
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint), otlptracegrpc.WithInsecure())
		if err != nil {
			return nil, fmt.Errorf("creating otlp exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	} else {
		// Without export nothing needs recording; spans stay cheap no-ops
		// except for propagation.
		opts = append(opts, sdktrace.WithSampler(sdktrace.NeverSample()))
	}
	tp := sdktrace.NewTracerProvider(opts...)
	t.TracerProvider = tp
	t.shutdown = tp.Shutdown
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return t, nil
}

// Run serves /metrics and /healthz until ctx ends, then flushes traces.
func (t *Telemetry) Run(ctx context.Context) error {
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = t.shutdown(sctx)
	}()
	if t.cfg.MetricsListen == "" {
		close(t.ready)
		<-ctx.Done()
		return nil
	}
	ln, err := net.Listen("tcp", t.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("listening for metrics on %s: %w", t.cfg.MetricsListen, err)
	}
	t.addr = ln.Addr()
	close(t.ready)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{Registry: t.Registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	t.logger.Info("metrics listening", "addr", ln.Addr().String())
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("serving metrics: %w", err)
	}
}
