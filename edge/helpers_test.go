package edge

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"google.golang.org/grpc"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"

	"github.com/sipd/sipd/edge/transport"
)

type fakeRouter struct {
	mu    sync.Mutex
	calls []*routerv1.RouteRequest
	fn    func(ctx context.Context, in *routerv1.RouteRequest) (*routerv1.RouteResponse, error)
}

func (f *fakeRouter) Route(ctx context.Context, in *routerv1.RouteRequest, _ ...grpc.CallOption) (*routerv1.RouteResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, in)
	fn := f.fn
	f.mu.Unlock()
	return fn(ctx, in)
}

type fakeRegistrar struct {
	mu    sync.Mutex
	calls []*registrarv1.RegisterRequest
	fn    func(ctx context.Context, in *registrarv1.RegisterRequest) (*registrarv1.RegisterResponse, error)
}

func (f *fakeRegistrar) Register(ctx context.Context, in *registrarv1.RegisterRequest, _ ...grpc.CallOption) (*registrarv1.RegisterResponse, error) {
	f.mu.Lock()
	f.calls = append(f.calls, in)
	fn := f.fn
	f.mu.Unlock()
	return fn(ctx, in)
}

func (f *fakeRegistrar) last() *registrarv1.RegisterRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return nil
	}
	return f.calls[len(f.calls)-1]
}

// testEdge runs an edge on 127.0.0.1 random UDP and TCP ports.
type testEdge struct {
	*Edge
	udp, tcp netip.AddrPort
}

func testConfig() Config {
	return Config{
		Listen:         []string{"udp:127.0.0.1:0", "tcp:127.0.0.1:0"},
		ServiceTimeout: 300 * time.Millisecond,
		Timers:         Timers{T1: 50 * time.Millisecond, T2: 400 * time.Millisecond, T4: 500 * time.Millisecond, FinalTimeout: 2 * time.Second, InviteTimeout: 3 * time.Second},
		Workers:        8,
		QueueSize:      64,
		DrainTimeout:   200 * time.Millisecond,
	}
}

func startEdge(t *testing.T, cfg Config, deps Deps) *testEdge {
	t.Helper()
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	e, err := New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return")
		}
	})
	select {
	case <-e.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("edge not ready")
	}
	te := &testEdge{Edge: e}
	for _, l := range e.Addrs() {
		switch l.Proto {
		case transport.UDP:
			te.udp = l.Addr
		case transport.TCP:
			te.tcp = l.Addr
		}
	}
	return te
}

func (te *testEdge) addr(p transport.Proto) netip.AddrPort {
	if p == transport.TCP {
		return te.tcp
	}
	return te.udp
}

// received is a message a test UA got and the connection it came on.
type received struct {
	msg  sip.Message
	conn net.Conn // nil for UDP
	from netip.AddrPort
}

// ua is a minimal SIP user agent for tests over UDP or TCP.
type ua struct {
	t     *testing.T
	proto transport.Proto
	udp   *net.UDPConn
	ln    net.Listener
	addr  netip.AddrPort
	msgs  chan received
	mu    sync.Mutex
	conns map[netip.AddrPort]net.Conn
	seq   atomic.Int64
	wg    sync.WaitGroup
}

func newUA(t *testing.T, p transport.Proto) *ua {
	t.Helper()
	u := &ua{t: t, proto: p, msgs: make(chan received, 256), conns: make(map[netip.AddrPort]net.Conn)}
	if p == transport.UDP {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		u.udp = c
		u.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
		u.wg.Add(1)
		go u.readUDP()
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u.ln = ln
		u.addr = ln.Addr().(*net.TCPAddr).AddrPort()
		u.wg.Add(1)
		go u.accept()
	}
	t.Cleanup(u.close)
	return u
}

func (u *ua) close() {
	if u.udp != nil {
		u.udp.Close()
	}
	if u.ln != nil {
		u.ln.Close()
	}
	u.mu.Lock()
	for _, c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *ua) readUDP() {
	defer u.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := u.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		u.msgs <- received{msg: m, from: from}
	}
}

func (u *ua) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.track(c)
	}
}

func (u *ua) track(c net.Conn) {
	from := c.RemoteAddr().(*net.TCPAddr).AddrPort()
	u.mu.Lock()
	u.conns[from] = c
	u.mu.Unlock()
	u.wg.Add(1)
	go u.readTCP(c, from)
}

func (u *ua) readTCP(c net.Conn, from netip.AddrPort) {
	defer u.wg.Done()
	br := bufio.NewReader(c)
	for {
		var head strings.Builder
		cl := 0
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				return
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(strings.TrimSpace(k), "content-length") || strings.TrimSpace(k) == "l") {
				cl, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, cl)
		if _, err := io.ReadFull(br, body); err != nil {
			return
		}
		m, err := sip.ParseMessage(append([]byte(head.String()), body...))
		if err != nil {
			continue
		}
		u.msgs <- received{msg: m, conn: c, from: from}
	}
}

// sendTo sends raw data to the edge (a new or the open connection for TCP).
func (u *ua) sendTo(to netip.AddrPort, data string) {
	u.t.Helper()
	if u.proto == transport.UDP {
		if _, err := u.udp.WriteToUDPAddrPort([]byte(data), to); err != nil {
			u.t.Fatalf("send: %v", err)
		}
		return
	}
	u.mu.Lock()
	c := u.conns[to]
	u.mu.Unlock()
	if c == nil {
		nc, err := net.Dial("tcp", to.String())
		if err != nil {
			u.t.Fatalf("dial: %v", err)
		}
		u.track(nc)
		c = nc
	}
	if _, err := c.Write([]byte(data)); err != nil {
		u.t.Fatalf("send: %v", err)
	}
}

// reply answers a received request on the way it came.
func (u *ua) reply(in received, data string) {
	u.t.Helper()
	if in.conn != nil {
		if _, err := in.conn.Write([]byte(data)); err != nil {
			u.t.Fatalf("reply: %v", err)
		}
		return
	}
	u.sendTo(in.from, data)
}

// expect waits for a message matching pred, skipping others.
func (u *ua) expect(what string, d time.Duration, pred func(sip.Message) bool) received {
	u.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case r := <-u.msgs:
			if pred(r.msg) {
				return r
			}
		case <-deadline.C:
			u.t.Fatalf("timed out waiting for %s", what)
			return received{}
		}
	}
}

// expectNone checks that no message matching pred arrives within d.
func (u *ua) expectNone(what string, d time.Duration, pred func(sip.Message) bool) {
	u.t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		select {
		case r := <-u.msgs:
			if pred(r.msg) {
				u.t.Fatalf("unexpected %s: %s", what, r.msg.String())
			}
		case <-deadline.C:
			return
		}
	}
}

func isResponse(method sip.RequestMethod, code int) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code && r.CSeq() != nil && r.CSeq().MethodName == method
	}
}

func isFinal(method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode >= 200 && r.CSeq() != nil && r.CSeq().MethodName == method
	}
}

func isRequest(method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == method
	}
}

func (u *ua) via(branch string) string {
	return fmt.Sprintf("SIP/2.0/%s %s;branch=%s;rport", u.proto, u.addr, branch)
}

func (u *ua) uriParam() string {
	if u.proto == transport.TCP {
		return ";transport=tcp"
	}
	return ""
}

// msg assembles a SIP message with a correct Content-Length.
func msg(start string, headers []string, body string) string {
	var b strings.Builder
	b.WriteString(start + "\r\n")
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// respond builds a UAS response to req copying Via, Record-Route, From,
// To (with tag), Call-ID and CSeq.
func respond(req *sip.Request, code int, reason, tag string, extra ...string) string {
	hs := []string{}
	for _, h := range req.GetHeaders("Via") {
		hs = append(hs, "Via: "+h.Value())
	}
	if code > 100 && code < 300 {
		for _, h := range req.GetHeaders("Record-Route") {
			hs = append(hs, "Record-Route: "+h.Value())
		}
	}
	hs = append(hs, "From: "+req.From().Value())
	to := req.To().Value()
	if tag != "" && !req.To().Params.Has("tag") {
		to += ";tag=" + tag
	}
	hs = append(hs, "To: "+to, "Call-ID: "+req.CallID().Value(), "CSeq: "+req.CSeq().Value())
	hs = append(hs, extra...)
	return msg(fmt.Sprintf("SIP/2.0 %d %s", code, reason), hs, "")
}

const sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

// invite builds an initial INVITE from u to sip:bob@localhost.
func (u *ua) invite(callID, branch string) string {
	return msg("INVITE sip:bob@localhost SIP/2.0", []string{
		"Via: " + u.via(branch),
		"Max-Forwards: 70",
		"From: <sip:alice@localhost>;tag=a1",
		"To: <sip:bob@localhost>",
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		fmt.Sprintf("Contact: <sip:alice@%s%s>", u.addr, u.uriParam()),
		"Content-Type: application/sdp",
	}, sdp)
}

func forwardTo(uris ...string) func(context.Context, *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
	return func(context.Context, *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
		g := &routerv1.TargetGroup{}
		for _, u := range uris {
			g.Targets = append(g.Targets, &routerv1.Target{RequestUri: u})
		}
		return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Forward{Forward: &routerv1.Forward{
			Groups: []*routerv1.TargetGroup{g}, RecordRoute: true,
		}}}, nil
	}
}

func reject(code int32) func(context.Context, *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
	return func(context.Context, *routerv1.RouteRequest) (*routerv1.RouteResponse, error) {
		return &routerv1.RouteResponse{Action: &routerv1.RouteResponse_Reject{Reject: &routerv1.Reject{Code: code}}}, nil
	}
}

var uniq atomic.Int64

func unique(prefix string) string { return fmt.Sprintf("%s%d", prefix, uniq.Add(1)) }
