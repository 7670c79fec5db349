package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestNATedContactGetsCallsAtReceived: a UA registers a private contact
// address that nobody can reach (it sits behind a NAT); a call to it goes
// to the address its REGISTER came from.
func TestNATedContactGetsCallsAtReceived(t *testing.T) {
	requireE2E(t)
	c := startCluster(t, allInOne, clusterOptions{})
	callee, err := dialSIP("udp", c.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { callee.Close() })
	caller, err := dialSIP("udp", c.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { caller.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := register(ctx, callee, "natted", "sip:natted@10.99.0.5:5060", 300)
	if err != nil || res.Final.Status != 200 {
		t.Fatalf("REGISTER = %v, %v; want 200", res, err)
	}
	inv := caller.NewRequest("INVITE", "sip:natted@"+loopback, requestOpts{Contact: "sip:caller@" + caller.Local()})
	if err := caller.SendRaw(inv.Raw); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case m := <-callee.Unmatched:
			if m.Method == "INVITE" && strings.Contains(m.StartLine, "sip:natted@10.99.0.5") {
				return // arrived at the source address of the REGISTER
			}
		case <-deadline:
			t.Fatal("the INVITE did not reach the NATed contact at its received address")
		}
	}
}
