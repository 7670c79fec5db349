package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// expectation is what the edge should do with a malformed message.
type expectation int

const (
	want400        expectation = iota // answer 400 Bad Request
	wantDrop                          // answer nothing
	want400OrDrop                     // either is fine (RFC 3261 does not decide)
	want400OrClose                    // TCP: 400, or close the connection it can no longer frame
)

func (e expectation) String() string {
	return [...]string{"400", "no answer", "400 or no answer", "400 or connection closed"}[e]
}

// malformedCase changes a well-formed OPTIONS into a broken one.
type malformedCase struct {
	name     string
	networks []string // where the case applies
	udp, tcp expectation
	edit     func(m *rawMessage)
}

// rawMessage is a request as lines, easy to break.
type rawMessage struct {
	startLine string
	headers   []string // "Name: value"
	body      string
	length    string // Content-Length value; empty: the real length
}

func (m *rawMessage) drop(name string) {
	out := m.headers[:0]
	for _, h := range m.headers {
		if !strings.HasPrefix(strings.ToLower(h), strings.ToLower(name)+":") {
			out = append(out, h)
		}
	}
	m.headers = out
}

func (m *rawMessage) bytes() []byte {
	length := m.length
	if length == "" {
		length = fmt.Sprint(len(m.body))
	}
	return []byte(m.startLine + "\r\n" + strings.Join(m.headers, "\r\n") + "\r\nContent-Length: " + length + "\r\n\r\n" + m.body)
}

// TestMalformed sends broken requests over raw UDP and TCP sockets. Where
// the message has a usable Via the edge answers 400; otherwise it drops the
// message. Afterwards the edge is alive and answers OPTIONS with 200.
func TestMalformed(t *testing.T) {
	requireE2E(t)
	c := startCluster(t, allInOne, clusterOptions{})
	both := []string{"udp", "tcp"}
	tests := []malformedCase{
		{"well formed (control)", both, 0, 0, func(m *rawMessage) {}},
		{"start line without version", both, want400OrDrop, want400OrDrop, func(m *rawMessage) {
			m.startLine = "OPTIONS sip:" + c.SIPAddr()
		}},
		{"start line garbage", both, want400OrDrop, want400OrDrop, func(m *rawMessage) {
			m.startLine = "HELLO \x01\x02 WORLD"
		}},
		{"missing Call-ID", both, want400, want400, func(m *rawMessage) { m.drop("Call-ID") }},
		{"missing CSeq", both, want400, want400, func(m *rawMessage) { m.drop("CSeq") }},
		{"missing From", both, want400, want400, func(m *rawMessage) { m.drop("From") }},
		{"missing To", both, want400, want400, func(m *rawMessage) { m.drop("To") }},
		{"missing Via", both, wantDrop, wantDrop, func(m *rawMessage) { m.drop("Via") }},
		{"Content-Length not a number", both, want400, want400OrClose, func(m *rawMessage) {
			m.body, m.length = "v=0\r\n", "five"
		}},
		{"Content-Length larger than the datagram", []string{"udp"}, want400, 0, func(m *rawMessage) {
			m.body, m.length = "v=0\r\n", "500"
		}},
	}
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			for _, tc := range tests {
				if !slices.Contains(tc.networks, network) {
					continue
				}
				t.Run(tc.name, func(t *testing.T) {
					want := tc.udp
					if network == "tcp" {
						want = tc.tcp
					}
					control := tc.name == "well formed (control)"
					conn, err := dialSIP(network, c.SIPAddr())
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close()
					m := baseOptions(conn, c.SIPAddr())
					tc.edit(m)
					if err := conn.SendRaw(m.bytes()); err != nil {
						t.Fatalf("sending: %v", err)
					}
					wait := 2 * time.Second
					if want == wantDrop || want == want400OrDrop {
						wait = time.Second // nothing should come: a short wait
					}
					var got *sipMsg
					closed := false
					timer := time.NewTimer(wait)
					defer timer.Stop()
				read:
					for {
						select {
						case r := <-conn.Unmatched:
							if r.Status >= 100 && r.Status < 200 {
								continue
							}
							got = r
							break read
						case <-conn.Closed:
							closed = true
							break read
						case <-timer.C:
							break read
						}
					}
					desc := "nothing"
					switch {
					case got != nil:
						desc = got.StartLine
					case closed:
						desc = "connection closed"
					}
					t.Logf("%s over %s -> %s", tc.name, network, desc)
					ok := false
					switch {
					case control:
						ok = got != nil && got.Status == 200
					case want == want400:
						ok = got != nil && got.Status == 400
					case want == wantDrop:
						ok = got == nil
					case want == want400OrDrop:
						ok = got == nil || got.Status == 400
					case want == want400OrClose:
						ok = (got != nil && got.Status == 400) || (got == nil && closed)
					}
					if !ok {
						exp := want.String()
						if control {
							exp = "200"
						}
						t.Errorf("%s over %s: got %s, want %s\nsent:\n%s\ngot:\n%v", tc.name, network, desc, exp, m.bytes(), got)
					}
				})
			}
		})
	}
	if !c.edgeProc().alive() {
		t.Fatalf("sipd exited after the malformed messages")
	}
	for _, network := range []string{"udp", "tcp"} {
		if code, err := optionsOnce(network, c.SIPAddr(), 2*time.Second); err != nil || code != 200 {
			t.Errorf("OPTIONS over %s after the malformed messages: status %d, %v; want 200", network, code, err)
		}
	}
}

// baseOptions is a well-formed OPTIONS to the edge itself from conn.
func baseOptions(conn *sipConn, edge string) *rawMessage {
	return &rawMessage{
		startLine: "OPTIONS sip:" + edge + " SIP/2.0",
		headers: []string{
			fmt.Sprintf("Via: SIP/2.0/%s %s;rport;branch=z9hG4bK%s", conn.Transport(), conn.Local(), randHex(8)),
			"Max-Forwards: 70",
			"From: <sip:e2e@" + loopback + ">;tag=" + randHex(4),
			"To: <sip:" + edge + ">",
			"Call-ID: " + randHex(12) + "@e2e",
			"CSeq: 1 OPTIONS",
			"Content-Type: application/sdp",
		},
	}
}
