package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// gruuPhone is one UA instance: a socket of its own and an instance URN.
type gruuPhone struct {
	conn     *sipConn
	urn      string
	contact  string
	pub, tmp string // the GRUUs the registrar gave it
}

// contactParam returns the value of a quoted Contact parameter, "" if
// absent.
func contactParam(contact, name string) string {
	_, rest, ok := strings.Cut(contact, ";"+name+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// registerGRUU registers p as alice with Supported: gruu and reads its
// GRUUs from the 200's Contact for its own binding.
func registerGRUU(t *testing.T, p *gruuPhone) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	aor := "sip:alice@" + loopback
	req := p.conn.NewRequest("REGISTER", "sip:"+loopback, requestOpts{
		From: aor, To: aor, Expires: "3600",
		Extra: []string{
			fmt.Sprintf(`Contact: <%s>;+sip.instance="<%s>"`, p.contact, p.urn),
			"Supported: gruu, path",
		},
	})
	res, err := p.conn.Do(ctx, req)
	if err != nil || res.Final.Status != 200 {
		t.Fatalf("REGISTER of %s = %v, %v", p.urn, res, err)
	}
	for _, h := range res.Final.Headers {
		if canonicalName(h.Name) != "contact" || !strings.Contains(h.Value, p.contact) {
			continue
		}
		p.pub, p.tmp = contactParam(h.Value, "pub-gruu"), contactParam(h.Value, "temp-gruu")
	}
	wantPub := aor + ";gr=" + p.urn
	if p.pub != wantPub || !strings.HasPrefix(p.tmp, "sip:tgruu.") || !strings.HasSuffix(p.tmp, "@"+loopback+";gr") {
		t.Fatalf("GRUUs of %s: pub-gruu %q (want %q), temp-gruu %q (want sip:tgruu.*@%s;gr)\n%s",
			p.urn, p.pub, wantPub, p.tmp, loopback, res.Final)
	}
}

// answerBusy answers the next INVITE at p with 486 and returns its
// Request-URI; it fails the test when none comes within timeout.
func answerBusy(t *testing.T, p *gruuPhone, timeout time.Duration) string {
	t.Helper()
	m := nextRequest(t, p.conn, "INVITE", timeout)
	if err := p.conn.SendRaw(responseTo(m, "486 Busy Here", "")); err != nil {
		t.Fatalf("answering INVITE: %v", err)
	}
	ruri := strings.Fields(m.StartLine)[1]
	return ruri
}

// noInvite fails when p receives an INVITE within d.
func noInvite(t *testing.T, p *gruuPhone, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-p.conn.Unmatched:
			if m.Method == "INVITE" {
				t.Fatalf("instance %s got an INVITE meant for another instance:\n%s", p.urn, m)
			}
		case <-deadline:
			return
		}
	}
}

// TestGRUURoutesToOneInstance registers alice from two UA instances with
// Supported: gruu. Each 200 carries pub-gruu and temp-gruu for its
// contact; an INVITE to an instance's public or temporary GRUU reaches
// that instance only, and a GRUU of an instance not registered gets 480.
func TestGRUURoutesToOneInstance(t *testing.T) {
	requireE2E(t)
	c := startCluster(t, threeProcess, clusterOptions{})
	var phones [2]*gruuPhone
	for i, urn := range []string{"urn:uuid:6a0b4a8e-0000-4000-8000-00000000000a", "urn:uuid:6a0b4a8e-0000-4000-8000-00000000000b"} {
		conn, err := dialSIP("udp", c.SIPAddr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		phones[i] = &gruuPhone{conn: conn, urn: urn, contact: "sip:alice@" + conn.Local()}
		registerGRUU(t, phones[i])
	}
	caller, err := dialSIP("udp", c.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()

	// call sends an INVITE and returns the final status; it may run off
	// the test goroutine, so it reports errors rather than failing.
	call := func(ruri string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := caller.Do(ctx, caller.NewRequest("INVITE", ruri, requestOpts{From: "sip:carol@" + loopback, Contact: "sip:carol@" + caller.Local()}))
		if err != nil {
			return 0, err
		}
		return res.Final.Status, nil
	}
	type outcome struct {
		status int
		err    error
	}

	tests := []struct {
		name   string
		ruri   string
		callee int
	}{
		{"public gruu of A", phones[0].pub, 0},
		{"temporary gruu of B", phones[1].tmp, 1},
		{"public gruu of B", phones[1].pub, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			callee, other := phones[tc.callee], phones[1-tc.callee]
			done := make(chan outcome, 1)
			go func() {
				status, err := call(tc.ruri)
				done <- outcome{status, err}
			}()
			if ruri := answerBusy(t, callee, 5*time.Second); ruri != callee.contact {
				t.Errorf("INVITE reached %s with Request-URI %q, want its contact %q", callee.urn, ruri, callee.contact)
			}
			if got := <-done; got.err != nil || got.status != 486 {
				t.Errorf("INVITE %s = %d, %v; want the callee's 486", tc.ruri, got.status, got.err)
			}
			noInvite(t, other, 300*time.Millisecond)
		})
	}

	t.Run("instance not registered is 480", func(t *testing.T) {
		if got, err := call("sip:alice@" + loopback + ";gr=urn:uuid:6a0b4a8e-0000-4000-8000-0000000000ff"); err != nil || got != 480 {
			t.Errorf("INVITE to the GRUU of an unregistered instance = %d, %v; want 480", got, err)
		}
	})
}
