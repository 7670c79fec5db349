package app

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	"github.com/sipd/sipd/services/config"
)

// collector is a minimal OTLP/gRPC trace collector that keeps every span.
type collector struct {
	collectortrace.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			c.spans = append(c.spans, ss.Spans...)
		}
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (c *collector) snapshot() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...)
}

func freeAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		return pc.LocalAddr().String()
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// sipRequest sends one request over UDP and returns the first final
// response's status line.
func sipRequest(t *testing.T, addr, method, ruri, callID string) string {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	msg := fmt.Sprintf("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;rport;branch=z9hG4bK-%s\r\nMax-Forwards: 70\r\n"+
		"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <%s>\r\nCall-ID: %s\r\nCSeq: 1 %s\r\nContact: <sip:alice@%s>\r\nContent-Length: 0\r\n\r\n",
		method, ruri, local, callID, ruri, callID, method, local)
	buf := make([]byte, 65535)
	// Generous: under -race on a busy machine the process may take a few
	// seconds to start listening.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			if !strings.HasPrefix(line, "SIP/2.0 1") {
				return line
			}
		}
	}
	t.Fatalf("%s %s: no final response", method, ruri)
	return ""
}

// TestRunTracesAcrossServices runs the all-in-one process in this test,
// exporting traces to an in-test OTLP collector, and checks that one SIP
// transaction yields spans from the edge, the router and the registrar
// in one trace, with the Call-ID on the edge's span. It also checks Run
// returns, with its goroutines gone, once its context ends.
func TestRunTracesAcrossServices(t *testing.T) {
	col := &collector{}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, col)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()

	baseline := runtime.NumGoroutine()
	sip := freeAddr(t, "udp")
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
telemetry: {otlp_endpoint: %q, sample_ratio: 1}
nats: {listen: "127.0.0.1:0"}
grpc: {registrar_listen: %q, router_listen: %q}
edge: {listen: ["udp:%s"]}
`, ln.Addr().String(), freeAddr(t, "tcp"), freeAddr(t, "tcp"), sip)))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(config.RoleSipd); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, "", config.RoleSipd, slog.New(slog.NewTextHandler(io.Discard, nil))) }()

	if got := sipRequest(t, sip, "OPTIONS", "sip:"+sip, "options-1"); !strings.Contains(got, "200") {
		t.Fatalf("OPTIONS: %q, want 200", got)
	}
	const callID = "trace-test-call-1"
	if got := sipRequest(t, sip, "INVITE", "sip:nobody@127.0.0.1", callID); !strings.Contains(got, "404") {
		t.Fatalf("INVITE: %q, want 404", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run() = %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return within 15s of cancel")
	}

	spans := col.snapshot()
	var edgeSpan *tracepb.Span
	for _, s := range spans {
		if s.Name == "SIP INVITE" && hasAttr(s, "sip.call_id", callID) {
			edgeSpan = s
		}
	}
	if edgeSpan == nil {
		t.Fatalf("no edge span \"SIP INVITE\" with sip.call_id=%s among %d spans: %v", callID, len(spans), names(spans))
	}
	want := map[string]bool{
		"sipd.router.v1.RouterService/Route":        false,
		"sipd.registrar.v1.RegistrarService/Lookup": false,
	}
	for _, s := range spans {
		if string(s.TraceId) != string(edgeSpan.TraceId) {
			continue
		}
		if _, ok := want[s.Name]; ok && s.Kind == tracepb.Span_SPAN_KIND_SERVER {
			want[s.Name] = true
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("no server span %q in the INVITE's trace; trace has: %v", name, names(sameTrace(spans, edgeSpan.TraceId)))
		}
	}

	// Every goroutine Run started has exited (the gRPC test server's stay).
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline+8 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseline+8 {
		buf := make([]byte, 1<<20)
		t.Fatalf("%d goroutines after Run returned, baseline %d:\n%s", n, baseline, buf[:runtime.Stack(buf, true)])
	}
}

func hasAttr(s *tracepb.Span, key, value string) bool {
	for _, a := range s.Attributes {
		if a.Key == key && a.Value.GetStringValue() == value {
			return true
		}
	}
	return false
}

func names(spans []*tracepb.Span) []string {
	var out []string
	for _, s := range spans {
		out = append(out, s.Name)
	}
	return out
}

func sameTrace(spans []*tracepb.Span, id []byte) []*tracepb.Span {
	var out []*tracepb.Span
	for _, s := range spans {
		if string(s.TraceId) == string(id) {
			out = append(out, s)
		}
	}
	return out
}
