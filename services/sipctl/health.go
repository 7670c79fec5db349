package sipctl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// sipRetransmit is how often an unanswered OPTIONS is sent again.
const sipRetransmit = 500 * time.Millisecond

// Check is the result of one health check.
type Check struct {
	Target string `json:"target"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// errUnhealthy is returned when any check fails.
var errUnhealthy = errors.New("unhealthy")

// runHealth checks gRPC health services, HTTP endpoints and SIP listeners.
// Container health checks run it inside sipd's images, which have no shell.
func runHealth(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("health")
	grpcAddrs := fs.String("grpc", "", "comma-separated gRPC addresses to ask the standard health service")
	service := fs.String("service", "", "gRPC health service name; empty asks for the whole server")
	httpURLs := fs.String("http", "", "comma-separated URLs that must answer 200 (e.g. http://127.0.0.1:9062/healthz)")
	sipTargets := fs.String("sip", "", "comma-separated udp:HOST:PORT SIP listeners that must answer OPTIONS")
	quiet := fs.Bool("q", false, "print nothing; the exit code tells")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if *grpcAddrs == "" && *httpURLs == "" && *sipTargets == "" {
		*grpcAddrs = c.opts.Registrar + "," + c.opts.Router
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	var checks []Check
	for _, a := range splitList(*grpcAddrs) {
		checks = append(checks, c.checkGRPC(ctx, a, *service))
	}
	for _, u := range splitList(*httpURLs) {
		checks = append(checks, checkHTTP(ctx, u))
	}
	for _, t := range splitList(*sipTargets) {
		checks = append(checks, checkSIP(ctx, t))
	}
	healthy := true
	for _, ch := range checks {
		healthy = healthy && ch.OK
	}
	if !*quiet {
		if c.opts.Output == "json" {
			if err := writeJSON(c.stdout, checks); err != nil {
				return err
			}
		} else {
			t := newTable(c.stdout, "TARGET", "STATUS", "DETAIL")
			for _, ch := range checks {
				st := "ok"
				if !ch.OK {
					st = "FAIL"
				}
				t.row(ch.Target, st, ch.Detail)
			}
			if err := t.flush(); err != nil {
				return err
			}
		}
	}
	if !healthy {
		return errUnhealthy
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (c *cli) checkGRPC(ctx context.Context, addr, service string) Check {
	ch := Check{Target: "grpc://" + addr}
	conn, err := c.dial(addr)
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		ch.Detail = describe(err)
		return ch
	}
	ch.Detail = resp.GetStatus().String()
	ch.OK = resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
	return ch
}

func checkHTTP(ctx context.Context, url string) Check {
	ch := Check{Target: url}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	resp.Body.Close()
	ch.Detail = resp.Status
	ch.OK = resp.StatusCode == http.StatusOK
	return ch
}

// checkSIP sends OPTIONS over UDP to target ("udp:host:port" or
// "host:port") and expects a final response, retransmitting until the
// deadline.
func checkSIP(ctx context.Context, target string) Check {
	ch := Check{Target: target}
	addr := strings.TrimPrefix(target, "udp:")
	if strings.HasPrefix(addr, "tcp:") || strings.HasPrefix(addr, "tls:") {
		ch.Detail = "only udp is supported"
		return ch
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		ch.Detail = err.Error()
		return ch
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr)
	host, _, _ := net.SplitHostPort(addr)
	msg := optionsRequest(host, local)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	buf := make([]byte, 65535)
	for time.Now().Before(deadline) {
		if _, err := conn.Write(msg); err != nil {
			ch.Detail = err.Error()
			return ch
		}
		next := time.Now().Add(sipRetransmit)
		if next.After(deadline) {
			next = deadline
		}
		_ = conn.SetReadDeadline(next)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			line, _, _ := strings.Cut(string(buf[:n]), "\r\n")
			var code int
			if _, err := fmt.Sscanf(line, "SIP/2.0 %d", &code); err != nil || code < 200 {
				continue
			}
			ch.Detail = strings.TrimPrefix(line, "SIP/2.0 ")
			ch.OK = code < 300
			return ch
		}
	}
	ch.Detail = "no answer to OPTIONS"
	return ch
}

func optionsRequest(host string, local *net.UDPAddr) []byte {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	tag := hex.EncodeToString(b)
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	l := local.String()
	return []byte("OPTIONS sip:" + host + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + l + ";branch=z9hG4bK-" + tag + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:sipctl@" + host + ">;tag=" + tag + "\r\n" +
		"To: <sip:" + host + ">\r\n" +
		"Call-ID: " + tag + "@sipctl\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Accept: application/sdp\r\n" +
		"User-Agent: sipctl\r\n" +
		"Content-Length: 0\r\n\r\n")
}
