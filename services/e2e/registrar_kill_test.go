package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// REGISTER load during TestRegistrarKilledUnderLoad: bounded in count and
// time.
const (
	regLoadInterval = 20 * time.Millisecond // 50 REGISTERs per second
	regLoadMax      = 2500                  // requests at most
	regLoadDuration = 60 * time.Second      // and for this long at most
	regLoadUsers    = 100                   // distinct AORs
	regAnswerWithin = 2 * time.Second       // each REGISTER must be answered this fast
	regGiveUp       = 5 * time.Second       // after this a REGISTER counts as unanswered
)

// TestRegistrarKilledUnderLoad kills the registrar (three processes) while
// REGISTERs flow through the edge: they must be answered 503 with
// Retry-After, each quickly, never left hanging; after the registrar is
// restarted on the same port they get 200 again; and the edge's goroutine
// count comes back near where it started.
func TestRegistrarKilledUnderLoad(t *testing.T) {
	requireE2E(t)
	c := startCluster(t, threeProcess, clusterOptions{})
	client, err := dialSIP("udp", c.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	for i := range 5 {
		mustRegister(t, client, fmt.Sprintf("warm%d", i), "sip:warm@"+hostPort(freePort(t)), 3600, 200)
	}
	baseline := stableGoroutines(t, c.EdgeMetricsURL())
	t.Logf("edge goroutines before the load: %.0f", baseline)

	load := startRegisterLoad(client)
	defer load.stop()

	waitFor(t, 15*time.Second, "20 REGISTERs answered 200 before the kill", func() bool {
		return load.count(func(r regResult) bool { return r.Status == 200 }) >= 20
	})

	killed := time.Now()
	c.proc("registrar").kill(t)
	t.Logf("registrar killed")
	waitFor(t, 15*time.Second, "100 REGISTERs sent after the kill to be answered (2s of outage)", func() bool {
		return load.count(func(r regResult) bool { return r.Sent.After(killed) && r.Done }) >= 100
	})

	restarted := time.Now()
	c.start("registrar")
	waitTCP(t, hostPort(c.ports.RegistrarGRPC), 20*time.Second)
	t.Logf("registrar restarted after %s down", restarted.Sub(killed).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "20 REGISTERs sent after the restart answered 200", func() bool {
		return load.count(func(r regResult) bool { return r.Sent.After(restarted) && r.Status == 200 }) >= 20
	})
	results := load.stop()

	var before200, outage503, after200 int
	var recovered time.Duration
	var problems []string
	for _, r := range results {
		switch {
		case r.Err != nil:
			problems = append(problems, fmt.Sprintf("REGISTER #%d (sent %s after start of outage): %v", r.N, r.Sent.Sub(killed).Round(time.Millisecond), r.Err))
			continue
		case r.Elapsed > regAnswerWithin:
			problems = append(problems, fmt.Sprintf("REGISTER #%d: %d after %s, want an answer within %s", r.N, r.Status, r.Elapsed.Round(time.Millisecond), regAnswerWithin))
		}
		switch r.Status {
		case 200:
			switch {
			case r.Sent.Before(killed):
				before200++
			case r.Sent.After(restarted):
				after200++
				if recovered == 0 {
					recovered = r.Sent.Sub(restarted)
				}
			}
		case 503:
			if r.Sent.After(killed) && r.Sent.Before(restarted) {
				outage503++
			}
			if r.RetryAfter == "" {
				problems = append(problems, fmt.Sprintf("REGISTER #%d: 503 without Retry-After", r.N))
			}
		default:
			problems = append(problems, fmt.Sprintf("REGISTER #%d (sent %s after the kill): %q, want 200 or 503", r.N, r.Sent.Sub(killed).Round(time.Millisecond), r.StartLine))
		}
	}
	t.Logf("%d REGISTERs: %d x 200 before the kill, %d x 503 while the registrar was down, %d x 200 after the restart (first 200 sent %s after it)",
		len(results), before200, outage503, after200, recovered.Round(time.Millisecond))
	for i, p := range problems {
		if i == 20 {
			t.Errorf("... and %d more problems", len(problems)-20)
			break
		}
		t.Error(p)
	}
	if outage503 == 0 {
		t.Errorf("no 503 to REGISTERs sent while the registrar was down")
	}

	// The edge's goroutines come back near the baseline: nothing piled up.
	limit := baseline + max(25, baseline/4)
	var last float64
	deadline := time.Now().Add(20 * time.Second)
	for {
		last, err = metric(c.EdgeMetricsURL(), "go_goroutines")
		if err == nil && last <= limit {
			t.Logf("edge goroutines after the load: %.0f (baseline %.0f, limit %.0f)", last, baseline, limit)
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("edge goroutines %.0f (err %v) 20s after the load, want <= %.0f (baseline %.0f)", last, err, limit, baseline)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !c.edgeProc().alive() {
		t.Errorf("the edge exited")
	}
}

// stableGoroutines samples go_goroutines a few times and returns the
// highest value seen.
func stableGoroutines(t *testing.T, url string) float64 {
	t.Helper()
	var hi float64
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; n < 5; {
		v, err := metric(url, "go_goroutines")
		if err == nil {
			hi = max(hi, v)
			n++
		} else if time.Now().After(deadline) {
			t.Fatalf("reading go_goroutines from %s: %v", url, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return hi
}

// regResult is one REGISTER of the load.
type regResult struct {
	N          int
	Sent       time.Time
	Done       bool // answered or given up
	Status     int
	StartLine  string
	RetryAfter string
	Elapsed    time.Duration
	Err        error
}

// registerLoad sends REGISTERs at a fixed pace from one UDP socket.
type registerLoad struct {
	cancel   context.CancelFunc
	loop     sync.WaitGroup // the pacing loop
	inFlight sync.WaitGroup // one per REGISTER awaiting its answer
	mu       sync.Mutex
	results  []regResult
	stopped  []regResult
	once     sync.Once
}

func startRegisterLoad(c *sipConn) *registerLoad {
	ctx, cancel := context.WithTimeout(context.Background(), regLoadDuration)
	l := &registerLoad{cancel: cancel}
	l.loop.Add(1)
	go func() {
		defer l.loop.Done()
		tick := time.NewTicker(regLoadInterval)
		defer tick.Stop()
		for n := 0; n < regLoadMax; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			l.mu.Lock()
			idx := len(l.results)
			l.results = append(l.results, regResult{N: n, Sent: time.Now()})
			l.mu.Unlock()
			l.inFlight.Add(1)
			go func() {
				defer l.inFlight.Done()
				user := fmt.Sprintf("load%d", n%regLoadUsers)
				rctx, rcancel := context.WithTimeout(context.Background(), regGiveUp)
				defer rcancel()
				res, err := register(rctx, c, user, fmt.Sprintf("sip:%s@%s", user, c.Local()), 3600)
				l.mu.Lock()
				defer l.mu.Unlock()
				r := &l.results[idx]
				r.Done, r.Err = true, err
				if err == nil {
					r.Status, r.StartLine, r.Elapsed = res.Final.Status, res.Final.StartLine, res.Elapsed
					r.RetryAfter = res.Final.Header("Retry-After")
				}
			}()
		}
	}()
	return l
}

// count returns how many results so far satisfy f.
func (l *registerLoad) count(f func(regResult) bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.results {
		if f(r) {
			n++
		}
	}
	return n
}

// stop ends the load, waits for every REGISTER to be answered or given up,
// and returns the results; idempotent.
func (l *registerLoad) stop() []regResult {
	l.once.Do(func() {
		l.cancel()
		l.loop.Wait()
		l.inFlight.Wait()
		l.mu.Lock()
		l.stopped = append([]regResult(nil), l.results...)
		l.mu.Unlock()
	})
	return l.stopped
}
