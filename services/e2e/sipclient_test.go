package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// This file is a deliberately small SIP client for the tests: it writes
// requests as text and parses just enough of the answers (start line,
// headers, body) to check status codes and headers. It is not a SIP stack.

// sipMsg is a parsed SIP message.
type sipMsg struct {
	StartLine string
	Status    int    // responses only
	Method    string // requests only
	Headers   []sipHeader
	Body      string
}

type sipHeader struct{ Name, Value string }

// compactNames maps the compact header forms (RFC 3261 section 7.3.3) to
// the long ones.
var compactNames = map[string]string{
	"i": "call-id", "f": "from", "t": "to", "v": "via", "l": "content-length",
	"m": "contact", "c": "content-type", "k": "supported", "s": "subject", "e": "content-encoding",
}

func canonicalName(name string) string {
	n := strings.ToLower(strings.TrimSpace(name))
	if long, ok := compactNames[n]; ok {
		return long
	}
	return n
}

// Header returns the first value of the named header, or "".
func (m *sipMsg) Header(name string) string {
	n := canonicalName(name)
	for _, h := range m.Headers {
		if canonicalName(h.Name) == n {
			return h.Value
		}
	}
	return ""
}

// String renders the message for test logs.
func (m *sipMsg) String() string {
	var b strings.Builder
	b.WriteString(m.StartLine + "\n")
	for _, h := range m.Headers {
		b.WriteString(h.Name + ": " + h.Value + "\n")
	}
	if m.Body != "" {
		b.WriteString("\n" + m.Body)
	}
	return b.String()
}

// parseSIP parses one message; body is whatever follows the blank line.
func parseSIP(raw []byte) (*sipMsg, error) {
	head, body, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	if len(lines) == 0 || lines[0] == "" {
		return nil, errors.New("empty message")
	}
	m := &sipMsg{StartLine: lines[0], Body: string(body)}
	if rest, ok := strings.CutPrefix(lines[0], "SIP/2.0 "); ok {
		code, _, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(code)
		if err != nil {
			return nil, fmt.Errorf("bad status line %q", lines[0])
		}
		m.Status = n
	} else {
		m.Method, _, _ = strings.Cut(lines[0], " ")
	}
	for _, l := range lines[1:] {
		if (strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t")) && len(m.Headers) > 0 {
			m.Headers[len(m.Headers)-1].Value += " " + strings.TrimSpace(l)
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("bad header line %q", l)
		}
		m.Headers = append(m.Headers, sipHeader{strings.TrimSpace(name), strings.TrimSpace(value)})
	}
	return m, nil
}

// sipConn is a SIP client socket: UDP (unconnected, so answers from any
// address arrive) or one TCP connection.
type sipConn struct {
	network string
	remote  string
	local   string // host:port used in Via and Contact
	udp     *net.UDPConn
	raddr   *net.UDPAddr
	tcp     net.Conn

	mu      sync.Mutex
	waiters map[string]chan *sipMsg // by Call-ID

	// Unmatched receives messages no waiter claimed (requests, and
	// responses without a known Call-ID); full means dropped.
	Unmatched chan *sipMsg
	// Closed is closed when the reader stops (socket closed or, on TCP,
	// the peer closed the connection).
	Closed chan struct{}
	done   sync.WaitGroup
}

// dialSIP opens a client socket towards addr over network ("udp" or "tcp").
func dialSIP(network, addr string) (*sipConn, error) {
	c := &sipConn{
		network:   network,
		remote:    addr,
		waiters:   map[string]chan *sipMsg{},
		Unmatched: make(chan *sipMsg, 64),
		Closed:    make(chan struct{}),
	}
	switch network {
	case "udp":
		raddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, err
		}
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(loopback)})
		if err != nil {
			return nil, err
		}
		c.udp, c.raddr, c.local = conn, raddr, conn.LocalAddr().String()
	case "tcp":
		conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			return nil, err
		}
		c.tcp, c.local = conn, conn.LocalAddr().String()
	default:
		return nil, fmt.Errorf("unknown network %q", network)
	}
	c.done.Add(1)
	go c.readLoop()
	return c, nil
}

// Close closes the socket and waits for the reader to stop.
func (c *sipConn) Close() error {
	var err error
	if c.udp != nil {
		err = c.udp.Close()
	} else {
		err = c.tcp.Close()
	}
	c.done.Wait()
	return err
}

// Transport is the Via transport token.
func (c *sipConn) Transport() string { return strings.ToUpper(c.network) }

// Local is the client's host:port.
func (c *sipConn) Local() string { return c.local }

// SendRaw writes bytes as one datagram (UDP) or onto the stream (TCP).
func (c *sipConn) SendRaw(b []byte) error {
	if c.udp != nil {
		_, err := c.udp.WriteToUDP(b, c.raddr)
		return err
	}
	_ = c.tcp.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, err := c.tcp.Write(b)
	return err
}

func (c *sipConn) readLoop() {
	defer c.done.Done()
	defer close(c.Closed)
	if c.udp != nil {
		buf := make([]byte, 65536)
		for {
			n, _, err := c.udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if m, err := parseSIP(append([]byte(nil), buf[:n]...)); err == nil {
				c.dispatch(m)
			}
		}
	}
	r := bufio.NewReader(c.tcp)
	for {
		raw, err := readStreamMessage(r)
		if err != nil {
			return
		}
		if m, err := parseSIP(raw); err == nil {
			c.dispatch(m)
		}
	}
}

// readStreamMessage reads one message framed by Content-Length from a
// stream, skipping keep-alive CRLFs.
func readStreamMessage(r *bufio.Reader) ([]byte, error) {
	var head bytes.Buffer
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == "\r\n" || line == "\n" {
			if head.Len() == 0 {
				continue // keep-alive
			}
			break
		}
		head.WriteString(strings.TrimRight(line, "\r\n") + "\r\n")
		if name, value, ok := strings.Cut(line, ":"); ok && canonicalName(name) == "content-length" {
			length, _ = strconv.Atoi(strings.TrimSpace(value))
		}
	}
	head.WriteString("\r\n")
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	return append(head.Bytes(), body...), nil
}

func (c *sipConn) dispatch(m *sipMsg) {
	if m.Status > 0 {
		c.mu.Lock()
		ch := c.waiters[m.Header("Call-ID")]
		c.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
			return
		}
	}
	select {
	case c.Unmatched <- m:
	default:
	}
}

// requestOpts fills the headers of a request; zero values get defaults.
type requestOpts struct {
	From    string // AOR URI of From; default sip:e2e@127.0.0.1
	To      string // URI of To; default the request URI
	CallID  string
	CSeq    int
	Contact string   // contact URI, without angle brackets; empty: none
	Expires string   // Expires header value; empty: none
	Extra   []string // more header lines
	Body    string
	Type    string // Content-Type when Body is set
}

// outRequest is a request ready to send, with what an ACK needs.
type outRequest struct {
	Method, RURI, Via, From, To, CallID string
	CSeq                                int
	Raw                                 []byte
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// NewRequest builds a request from this socket.
func (c *sipConn) NewRequest(method, ruri string, o requestOpts) *outRequest {
	if o.From == "" {
		o.From = "sip:e2e@" + loopback
	}
	if o.To == "" {
		o.To = ruri
	}
	if o.CallID == "" {
		o.CallID = randHex(12) + "@e2e"
	}
	if o.CSeq == 0 {
		o.CSeq = 1
	}
	r := &outRequest{
		Method: method, RURI: ruri, CallID: o.CallID, CSeq: o.CSeq,
		Via:  fmt.Sprintf("SIP/2.0/%s %s;rport;branch=z9hG4bK%s", c.Transport(), c.local, randHex(8)),
		From: fmt.Sprintf("<%s>;tag=%s", o.From, randHex(4)),
		To:   "<" + o.To + ">",
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: %s\r\n", r.Via)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: %s\r\n", r.From)
	fmt.Fprintf(&b, "To: %s\r\n", r.To)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", r.CallID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", r.CSeq, method)
	if o.Contact != "" {
		fmt.Fprintf(&b, "Contact: <%s>\r\n", o.Contact)
	}
	if o.Expires != "" {
		fmt.Fprintf(&b, "Expires: %s\r\n", o.Expires)
	}
	for _, h := range o.Extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("User-Agent: sipd-e2e\r\n")
	if o.Body != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", o.Type)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(o.Body), o.Body)
	r.Raw = []byte(b.String())
	return r
}

// result is what a client transaction got back.
type result struct {
	Final       *sipMsg
	Provisional []*sipMsg
	Elapsed     time.Duration // from sending to the final response
}

// Do sends req and waits for its final response, until ctx ends. A non-2xx
// final response to INVITE is acknowledged (RFC 3261 section 17.1.1.3).
// There are no retransmissions: the tests run on loopback.
func (c *sipConn) Do(ctx context.Context, req *outRequest) (*result, error) {
	ch := make(chan *sipMsg, 16)
	c.mu.Lock()
	c.waiters[req.CallID] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.waiters, req.CallID)
		c.mu.Unlock()
	}()
	start := time.Now()
	if err := c.SendRaw(req.Raw); err != nil {
		return nil, fmt.Errorf("sending %s: %w", req.Method, err)
	}
	res := &result{}
	for {
		select {
		case m := <-ch:
			if !strings.HasSuffix(m.Header("CSeq"), " "+req.Method) {
				continue
			}
			if m.Status < 200 {
				res.Provisional = append(res.Provisional, m)
				continue
			}
			res.Final, res.Elapsed = m, time.Since(start)
			if req.Method == "INVITE" && m.Status >= 300 {
				_ = c.SendRaw(req.ack(m))
			}
			return res, nil
		case <-c.Closed:
			return res, fmt.Errorf("%s %s: connection closed after %s without a final response", req.Method, req.RURI, time.Since(start).Round(time.Millisecond))
		case <-ctx.Done():
			return res, fmt.Errorf("%s %s: no final response after %s: %w", req.Method, req.RURI, time.Since(start).Round(time.Millisecond), ctx.Err())
		}
	}
}

// ack builds the ACK for a non-2xx final response to req.
func (r *outRequest) ack(resp *sipMsg) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "ACK %s SIP/2.0\r\n", r.RURI)
	fmt.Fprintf(&b, "Via: %s\r\n", r.Via)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: %s\r\n", r.From)
	fmt.Fprintf(&b, "To: %s\r\n", resp.Header("To"))
	fmt.Fprintf(&b, "Call-ID: %s\r\n", r.CallID)
	fmt.Fprintf(&b, "CSeq: %d ACK\r\nContent-Length: 0\r\n\r\n", r.CSeq)
	return []byte(b.String())
}

// register binds contact to sip:user@127.0.0.1 for expires seconds and
// returns the final response.
func register(ctx context.Context, c *sipConn, user, contact string, expires int) (*result, error) {
	req := c.NewRequest("REGISTER", "sip:"+loopback, requestOpts{
		From:    "sip:" + user + "@" + loopback,
		To:      "sip:" + user + "@" + loopback,
		Contact: contact,
		Expires: strconv.Itoa(expires),
	})
	return c.Do(ctx, req)
}
