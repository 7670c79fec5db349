package e2e

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"
)

// Shortened INVITE timers asked of the edge in TestCallFailures.
const (
	shortInviteTimeout = 4 * time.Second
	shortFinalTimeout  = 4 * time.Second
)

const testSDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"

// TestCallFailures checks the final answer for calls that cannot be
// completed: 404 for a user who never registered, 480 for one who
// registered and then unregistered, and 408 (or 480) within the INVITE
// timers for one whose contact never answers.
func TestCallFailures(t *testing.T) {
	requireE2E(t)
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			t.Parallel()
			c := startCluster(t, tp.topo, clusterOptions{InviteTimeout: shortInviteTimeout, FinalTimeout: shortFinalTimeout})
			if !c.timers {
				t.Fatal("the edge refused edge.timers.invite_timeout / final_timeout")
			}
			noAnswerBudget := max(shortInviteTimeout, shortFinalTimeout) + 4*time.Second

			client, err := dialSIP("udp", c.SIPAddr())
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()

			// A contact that takes INVITEs and never answers.
			silent, err := net.ListenPacket("udp", loopback+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			go drain(silent)

			goneContact := "sip:gone@" + hostPort(freePort(t))
			mustRegister(t, client, "gone", goneContact, 3600, 200)
			mustRegister(t, client, "gone", goneContact, 0, 200)
			mustRegister(t, client, "mute", "sip:mute@"+silent.LocalAddr().String(), 3600, 200)

			tests := []struct {
				name   string
				user   string
				want   []int
				within time.Duration
			}{
				{"never registered", "nobody", []int{404}, 3 * time.Second},
				{"unregistered", "gone", []int{480}, 3 * time.Second},
				{"contact does not answer", "mute", []int{408, 480}, noAnswerBudget},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), tc.within)
					defer cancel()
					ruri := fmt.Sprintf("sip:%s@%s", tc.user, c.SIPAddr())
					req := client.NewRequest("INVITE", ruri, requestOpts{
						From:    "sip:alice@" + loopback,
						Contact: "sip:alice@" + client.Local(),
						Body:    testSDP, Type: "application/sdp",
					})
					res, err := client.Do(ctx, req)
					if err != nil {
						t.Fatalf("INVITE %s: %v (want %v within %s)", ruri, err, tc.want, tc.within)
					}
					t.Logf("INVITE %s: %s after %s", ruri, res.Final.StartLine, res.Elapsed.Round(time.Millisecond))
					if !slices.Contains(tc.want, res.Final.Status) {
						t.Errorf("INVITE %s: got %q, want one of %v\n%s", ruri, res.Final.StartLine, tc.want, res.Final)
					}
				})
			}
		})
	}
}

// mustRegister registers (or, with expires 0, unregisters) and wants the
// given status.
func mustRegister(t *testing.T, c *sipConn, user, contact string, expires, want int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := register(ctx, c, user, contact, expires)
	if err != nil {
		t.Fatalf("REGISTER %s -> %s (expires %d): %v", user, contact, expires, err)
	}
	if res.Final.Status != want {
		t.Fatalf("REGISTER %s -> %s (expires %d): got %q, want %d\n%s", user, contact, expires, res.Final.StartLine, want, res.Final)
	}
}

// drain reads and discards datagrams until the socket is closed.
func drain(c net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		if _, _, err := c.ReadFrom(buf); err != nil {
			return
		}
	}
}
