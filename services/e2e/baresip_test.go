package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBaresipCall registers two real softphones (baresip, headless, with an
// outbound proxy, auto-answer and its TCP control port) through the
// all-in-one sipd and has one call the other, over UDP and over TCP.
func TestBaresipCall(t *testing.T) {
	requireE2E(t)
	bin := baresipPath(t)
	c := startCluster(t, allInOne, clusterOptions{})
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			alice := startBaresip(t, bin, "alice"+transport, c.SIPAddr(), transport)
			bob := startBaresip(t, bin, "bob"+transport, c.SIPAddr(), transport)
			alice.waitRegistered(t, 15*time.Second)
			bob.waitRegistered(t, 15*time.Second)

			alice.command(t, "dial", "sip:bob"+transport+"@127.0.0.1")
			bob.waitEvent(t, "CALL_ESTABLISHED", 10*time.Second)
			alice.waitEvent(t, "CALL_ESTABLISHED", 10*time.Second)

			alice.command(t, "hangup", "")
			bob.waitEvent(t, "CALL_CLOSED", 10*time.Second)
			alice.waitEvent(t, "CALL_CLOSED", 10*time.Second)
		})
	}
}

// baresipPath returns the baresip executable; without it the test skips,
// or fails when CI=true.
func baresipPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("baresip")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("baresip not found in PATH (required when CI=true; Debian package baresip-core): %v", err)
		}
		t.Skipf("baresip not found in PATH, skipping (Debian package baresip-core): %v", err)
	}
	return p
}

// softphone is a running baresip with its control connection.
type softphone struct {
	name string
	conn net.Conn

	mu     sync.Mutex
	events []map[string]any
	seen   int // events already consumed by waitEvent
	notify chan struct{}
	token  int
}

// startBaresip writes a config directory for user and starts baresip with
// the edge as registrar and outbound proxy over transport.
func startBaresip(t *testing.T, bin, user, edge, transport string) *softphone {
	t.Helper()
	dir := t.TempDir()
	sipPort, ctrlPort := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`poll_method		epoll
sip_listen		127.0.0.1:%d
module_path		/usr/lib/baresip/modules
module			g711.so
module			ausine.so
module			aufile.so
module_app		account.so
module_app		ctrl_tcp.so
module_app		menu.so
ctrl_tcp_listen		127.0.0.1:%d
audio_player		aufile,/dev/null
audio_source		ausine,440
ausrc_srate		48000
auplay_srate		48000
ausrc_channels		2
auplay_channels		2
audio_alert		aufile,/dev/null
rtp_ports		%d-%d
`, sipPort, ctrlPort, 20000+2*(sipPort%10000), 20001+2*(sipPort%10000))
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	account := fmt.Sprintf("<sip:%s@127.0.0.1;transport=%s>;regint=60;outbound=\"sip:%s;transport=%s\";answermode=auto\n", user, transport, edge, transport)
	if err := os.WriteFile(filepath.Join(dir, "accounts"), []byte(account), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, user, bin, filepath.Join(dir, "baresip.log"), "-f", dir)
	var conn net.Conn
	waitFor(t, 10*time.Second, user+" control port", func() bool {
		var err error
		conn, err = net.DialTimeout("tcp", hostPort(ctrlPort), time.Second)
		return err == nil
	})
	p := &softphone{name: user, conn: conn, notify: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.readLoop()
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return p
}

// readLoop reads netstring-framed JSON messages from the control port.
func (p *softphone) readLoop() {
	r := bufio.NewReader(p.conn)
	for {
		lenStr, err := r.ReadString(':')
		if err != nil {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(lenStr, ":")))
		if err != nil || n < 0 || n > 1<<20 {
			return
		}
		buf := make([]byte, n+1) // payload and the trailing comma
		if _, err := ioReadFull(r, buf); err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(buf[:n], &m) != nil {
			continue
		}
		p.mu.Lock()
		p.events = append(p.events, m)
		p.mu.Unlock()
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
}

func ioReadFull(r *bufio.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// waitRegistered polls the registration state until baresip reports its
// account registered (the REGISTER_OK event may come before the control
// connection does).
func (p *softphone) waitRegistered(t *testing.T, timeout time.Duration) {
	t.Helper()
	var last string
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		last = p.command(t, "reginfo", "")
		if strings.Contains(last, "OK") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not registered within %s; last reginfo: %q", p.name, timeout, last)
}

// command sends a control command, waits for its successful response and
// returns its data.
func (p *softphone) command(t *testing.T, cmd, params string) string {
	t.Helper()
	p.mu.Lock()
	p.token++
	token := strconv.Itoa(p.token)
	p.mu.Unlock()
	body, _ := json.Marshal(map[string]string{"command": cmd, "params": params, "token": token})
	if _, err := fmt.Fprintf(p.conn, "%d:%s,", len(body), body); err != nil {
		t.Fatalf("%s: sending %s: %v", p.name, cmd, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		for _, m := range p.events {
			if m["response"] == true && m["token"] == token {
				p.mu.Unlock()
				if m["ok"] != true {
					t.Fatalf("%s: %s failed: %v", p.name, cmd, m)
				}
				data, _ := m["data"].(string)
				return data
			}
		}
		p.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("%s: no response to %s within 10s", p.name, cmd)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEvent waits for an event of the given type not consumed before.
func (p *softphone) waitEvent(t *testing.T, typ string, timeout time.Duration) {
	t.Helper()
	p.wait(t, "event "+typ, timeout, func(m map[string]any) bool {
		if m["event"] != true {
			return false
		}
		if m["type"] == "REGISTER_FAIL" || m["type"] == "CALL_CLOSED" && typ != "CALL_CLOSED" {
			t.Fatalf("%s: waiting for %s, got %v", p.name, typ, m)
		}
		return m["type"] == typ
	})
}

func (p *softphone) wait(t *testing.T, what string, timeout time.Duration, match func(map[string]any) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		p.mu.Lock()
		for p.seen < len(p.events) {
			m := p.events[p.seen]
			p.seen++
			if match(m) {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
		select {
		case <-p.notify:
		case <-deadline:
			p.mu.Lock()
			seen := fmt.Sprint(p.events)
			p.mu.Unlock()
			t.Fatalf("%s: no %s within %s; messages so far: %s", p.name, what, timeout, seen)
		}
	}
}
