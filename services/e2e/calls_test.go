package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Call load: bounded in count (-m), concurrency (-l), rate (-r) and time
// (-timeout), so a broken server cannot make sipp run away.
const (
	callCount = 1000
	callRate  = 250 // calls per second
	callLimit = 300 // simultaneous calls
)

var topologies = []struct {
	name string
	topo topology
}{
	{"three processes", threeProcess},
	{"all in one", allInOne},
}

var transports = []struct {
	name    string
	network string
}{
	{"udp", "udp"},
	{"tcp", "tcp"},
}

// TestCalls registers alice and bob (bob's contact is a sipp UAS), then
// places callCount calls from alice to bob through the edge, over UDP and
// over TCP, in both topologies, and wants every call to complete with no
// unexpected message on either side.
func TestCalls(t *testing.T) {
	requireE2E(t)
	sippPath(t)
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			c := startCluster(t, tp.topo, clusterOptions{})
			for _, tr := range transports {
				t.Run(tr.name, func(t *testing.T) {
					runCalls(t, c, tr.network)
				})
			}
			if !c.edgeProc().alive() {
				t.Errorf("the edge process exited during the calls")
			}
		})
	}
}

func runCalls(t *testing.T, c *cluster, network string) {
	t.Helper()
	tr := sippTransport(network)
	uasPort, uacPort := freePort(t), freePort(t)

	uas := startSipp(t, "uas-"+network,
		"-sf", scenario(t, "uas.xml"), "-t", tr,
		"-i", loopback, "-p", strconv.Itoa(uasPort), "-mp", strconv.Itoa(freePort(t)),
		"-m", strconv.Itoa(callCount),
		"-timeout", "120s", "-timeout_error")
	waitFor(t, 10*time.Second, "sipp UAS listening on "+network+" "+hostPort(uasPort), func() bool {
		return uas.running() && portBound(network, uasPort)
	})

	sippRegister(t, network, c.SIPAddr(), "bob", fmt.Sprintf("sip:bob@%s;transport=%s", hostPort(uasPort), network), 3600)
	sippRegister(t, network, c.SIPAddr(), "alice", fmt.Sprintf("sip:alice@%s;transport=%s", hostPort(uacPort), network), 3600)

	start := time.Now()
	uac := startSipp(t, "uac-"+network,
		"-sf", scenario(t, "uac.xml"), "-t", tr,
		"-i", loopback, "-p", strconv.Itoa(uacPort), "-mp", strconv.Itoa(freePort(t)),
		"-s", "bob", "-key", "caller", "alice", "-key", "domain", loopback,
		"-m", strconv.Itoa(callCount), "-r", strconv.Itoa(callRate), "-l", strconv.Itoa(callLimit),
		"-timeout", "90s", "-timeout_error", "-recv_timeout", "10000",
		c.SIPAddr())
	uacExit := uac.wait(t, 100*time.Second)
	uasExit := uas.wait(t, 15*time.Second)
	t.Logf("%d calls over %s in %s", callCount, network, time.Since(start).Round(time.Millisecond))

	sides := []struct {
		name string
		run  *sippRun
		exit int
	}{
		{"caller (uac)", uac, uacExit},
		{"callee (uas)", uas, uasExit},
	}
	// The edge stays in the dialog's path: the caller's 200 carries its
	// Record-Route, so ACK and BYE went through it by their Route headers.
	if trace := uac.firstMessages(20000); !strings.Contains(strings.ToLower(trace), "record-route:") {
		t.Errorf("the responses reaching the caller over %s carry no Record-Route: ACK and BYE bypass the edge\n%s", network, trace)
	}
	for _, side := range sides {
		st := side.run.stats(t)
		t.Logf("%s: exit %d, %s", side.name, side.exit, st.summary())
		checks := []struct {
			what      string
			got, want int
		}{
			{"exit code", side.exit, 0},
			{"SuccessfulCall", st.Int("SuccessfulCall(C)"), callCount},
			{"FailedCall", st.Int("FailedCall(C)"), 0},
			{"FailedUnexpectedMessage", st.Int("FailedUnexpectedMessage(C)"), 0},
		}
		failed := false
		for _, ch := range checks {
			if ch.got != ch.want {
				failed = true
				t.Errorf("%s over %s: %s = %d, want %d", side.name, network, ch.what, ch.got, ch.want)
			}
		}
		if failed {
			t.Logf("%s\n---- sipp %s first messages ----\n%s", side.run.explain(), side.run.name, side.run.firstMessages(6000))
		}
	}
}

// waitFor polls cond every 20ms until it holds, failing the test after
// timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
