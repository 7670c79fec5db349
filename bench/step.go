package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// result is one proxy at one offered rate (proxy "" is the loader alone).
type result struct {
	proxy      string
	rate       int
	run        sippRun
	achieved   float64 // calls/s
	cpuSec     float64 // proxy CPU, all its processes
	cpuPerCall float64 // microseconds
	cpuPct     float64 // of one CPU
	loaderPct  float64 // sipp caller + callee, of one CPU
	otherCPU   float64 // CPUs busy with neither, during the step
	p50, p99   float64 // INVITE to 200, ms
	retrans    int     // caller + callee
	rcvbufErr  uint64
	rssKB      int
	pssKB      int
	sockMem    string
	mem        map[string]float64
	perCallGo  []float64 // Go processes: mallocs, bytes allocated and GC cycles per call
	notes      []string
	pass       bool
	why        []string
	err        string
}

// noisy reports a step disturbed by work outside proxy and loader.
func (r *result) noisy() bool {
	for _, n := range r.notes {
		if strings.HasPrefix(n, "noisy") || strings.HasPrefix(n, "machine busy") {
			return true
		}
	}
	return false
}

func (r *result) verdict() string {
	if r.err != "" {
		return "error: " + r.err
	}
	if r.pass {
		return "pass"
	}
	return "fail: " + strings.Join(r.why, ", ")
}

// step1 measures one proxy (or the loader alone) at one rate for dur.
func (b *bench) step1(ctx context.Context, px string, rate int, dur time.Duration) (*result, error) {
	res := &result{proxy: px, rate: rate}
	if busy := waitIdle(ctx, 30*time.Second); busy >= 0.1 {
		res.notes = append(res.notes, fmt.Sprintf("machine busy before the step (%.2f CPUs)", busy))
	}
	name := px
	if name == "" {
		name = "loader"
	}
	tag := fmt.Sprintf("%s-%d", name, rate)
	uasPort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	o := uacOpts{target: fmt.Sprintf("127.0.0.1:%d", uasPort), user: "bench", domain: "uas.bench", rate: rate}
	var r *running
	if px != "" {
		// The proxy first: the chain registers the callee from its port.
		r, err = b.startProxy(ctx, px, tag, uasPort)
		if err != nil {
			return nil, err
		}
		defer r.stop()
		o.target, o.user, o.domain = r.addr, r.user, r.domain
	}
	u, err := b.startUAS(ctx, tag, uasPort)
	if err != nil {
		return nil, err
	}
	defer u.stop()
	if b.warm > 0 {
		w := o
		w.calls, w.limit, w.tag = max(1, int(float64(rate)*b.warm.Seconds())), max(100, rate), tag+"-warmup"
		if wr, err := b.runUAC(ctx, w); err != nil || wr.failed > 0 {
			res.notes = append(res.notes, fmt.Sprintf("warm-up: %d failed calls %v", wr.failed, errOrNil(err)))
		}
	}
	time.Sleep(1100 * time.Millisecond) // the callee's statistics are written every second
	var pids []int
	if r != nil {
		pids = r.pids()
		res.sockMem = socketMem(strings.TrimPrefix(r.addr, "127.0.0.1:"))
	}
	var mem0 map[string]float64
	if r != nil {
		mem0 = r.memory(ctx, b.loadCPU)
	}
	cpu0, uasCPU0, uasRe0 := cpuSeconds(pids), u.cpu(), u.retrans()
	m0, rb0, t0 := readCPUTimes(), udpRcvbufErrors(), time.Now()

	o.calls, o.limit, o.tag = int(float64(rate)*dur.Seconds()), max(100, rate), tag
	run, err := b.runUAC(ctx, o)
	if err != nil {
		return nil, err
	}
	elapsed := time.Since(t0)
	cpu1, uasCPU1, m1, rb1 := cpuSeconds(pids), u.cpu(), readCPUTimes(), udpRcvbufErrors()
	res.run = run
	res.rssKB, res.pssKB = memKB(pids)
	if r != nil {
		res.mem = r.memory(ctx, b.loadCPU)
	}
	time.Sleep(1100 * time.Millisecond)
	res.retrans = run.retrans + u.retrans() - uasRe0

	sec := run.elapsed.Seconds()
	// Achieved is the rate of answers while calls were offered, so that a
	// few calls timing out at the end do not stretch the time.
	res.achieved = run.answered
	res.cpuSec = cpu1 - cpu0
	if run.calls > 0 {
		res.cpuPerCall = res.cpuSec * 1e6 / float64(run.calls)
	}
	res.cpuPct = 100 * res.cpuSec / sec
	loader := run.cpu + uasCPU1 - uasCPU0
	res.loaderPct = 100 * loader / sec
	res.otherCPU = busyCPUs(m0, m1, elapsed) - (res.cpuSec+loader)/elapsed.Seconds()
	if n := nicedCPUs(m0, m1, elapsed); n > 0.1 {
		res.notes = append(res.notes, fmt.Sprintf("niced background work: %.2f CPUs", n))
	}
	if res.otherCPU > 0.25 {
		res.notes = append(res.notes, fmt.Sprintf("noisy: %.2f CPUs busy outside proxy and loader", res.otherCPU))
	}
	res.p50, res.p99 = run.percentile(0.50), run.percentile(0.99)
	if mem0 != nil && res.mem != nil && run.calls > 0 {
		for _, k := range []string{"go_memstats_mallocs_total", "go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count"} {
			if v0, ok := mem0[k]; ok {
				res.perCallGo = append(res.perCallGo, (res.mem[k]-v0)/float64(run.calls))
			}
		}
	}
	res.rcvbufErr = rb1 - rb0

	want := o.calls
	if run.ok+run.failed < want {
		res.why = append(res.why, fmt.Sprintf("%d of %d calls made", run.ok+run.failed, want))
	}
	if float64(run.failed) > 0.001*float64(want) {
		res.why = append(res.why, fmt.Sprintf("%d failed calls", run.failed))
	}
	if res.retrans > 0 {
		res.why = append(res.why, fmt.Sprintf("%d retransmissions", res.retrans))
	}
	if res.p99 > 50 {
		res.why = append(res.why, fmt.Sprintf("p99 %.1f ms", res.p99))
	}
	if res.rcvbufErr > 0 {
		res.why = append(res.why, fmt.Sprintf("%d UDP receive-buffer drops", res.rcvbufErr))
	}
	if px != "" && res.cpuPct > 80 {
		res.why = append(res.why, fmt.Sprintf("proxy CPU %.0f%%", res.cpuPct))
	}
	if res.achieved < 0.95*float64(rate) {
		res.why = append(res.why, fmt.Sprintf("achieved %.0f cps", res.achieved))
	}
	res.pass = len(res.why) == 0
	return res, nil
}

func errOrNil(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

var skmemRe = regexp.MustCompile(`skmem:\([^)]*\)`)

// socketMem is ss's skmem of the UDP socket on 127.0.0.1:port (rb is the
// receive buffer the kernel granted, tb the send buffer, d drops).
func socketMem(port string) string {
	out, err := exec.Command("ss", "-uamnH", "sport = :"+port).Output()
	if err != nil {
		return ""
	}
	return skmemRe.FindString(string(out))
}

// holdResult is the memory test of one proxy: calls held for hold at rate.
type holdResult struct {
	proxy        string
	rate         int
	hold         time.Duration
	run          sippRun
	samples      []holdSample
	base         holdSample
	inFlight     float64 // mean calls in flight on the plateau
	perCall      map[string]float64
	plateauDrift map[string]float64 // second half of the plateau vs first half, per call
	err          string
}

// holdSample is one reading during the memory test.
type holdSample struct {
	at       time.Duration
	inFlight int
	pssKB    int
	mem      map[string]float64
}

// holdTest offers rate calls/s for hold+settle, each held for hold: the
// calls in flight plateau at rate*hold from hold on, and the transactions
// a proxy keeps after a call (the edge: Timers L, M and J, 64*T1 = 32 s;
// Kamailio: its wait timer) plateau once hold plus that linger has passed.
// It samples memory every two seconds and divides the plateau's growth
// over the idle proxy by the calls in flight.
func (b *bench) holdTest(ctx context.Context, px string, rate int, hold time.Duration) (*holdResult, error) {
	h := &holdResult{proxy: px, rate: rate, hold: hold}
	waitIdle(ctx, 30*time.Second)
	tag := fmt.Sprintf("hold-%s-%d", px, rate)
	uasPort, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	r, err := b.startProxy(ctx, px, tag, uasPort)
	if err != nil {
		return nil, err
	}
	defer r.stop()
	u, err := b.startUAS(ctx, tag, uasPort)
	if err != nil {
		return nil, err
	}
	defer u.stop()
	pids := r.pids()
	time.Sleep(time.Second)
	h.base = holdSample{mem: r.memory(ctx, b.loadCPU)}
	_, h.base.pssKB = memKB(pids)

	feed := hold + holdSettle
	o := uacOpts{target: r.addr, user: r.user, domain: r.domain, rate: rate,
		calls: int(float64(rate) * feed.Seconds()), limit: int(float64(rate) * (hold + 10*time.Second).Seconds()), hold: hold, tag: tag}
	type done struct {
		run sippRun
		err error
	}
	ch := make(chan done, 1)
	start := time.Now()
	go func() {
		run, err := b.runUAC(ctx, o)
		ch <- done{run, err}
	}()
	dir := filepath.Join(b.work, "sipp", tag)
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case d := <-ch:
			if d.err != nil {
				return nil, d.err
			}
			h.run = d.run
			h.summarize(feed)
			return h, nil
		case <-tick.C:
			s := holdSample{at: time.Since(start), mem: r.memory(ctx, b.loadCPU)}
			_, s.pssKB = memKB(pids)
			if st, err := lastStat(dir, "uac_"); err == nil {
				s.inFlight = st.int("CurrentCall")
			}
			h.samples = append(h.samples, s)
		}
	}
}

// holdLinger is how long after its end a call's transactions may stay
// (the edge's 64*T1 = 32 s, plus margin); the memory plateau starts
// hold+holdLinger after the first call. holdSettle is the feed beyond the
// hold time, so the plateau lasts holdSettle-holdLinger.
const (
	holdLinger = 36 * time.Second
	holdSettle = 56 * time.Second
)

// memKeys are the figures of the memory test, per proxy kind.
var memKeys = []string{"go_memstats_heap_inuse_bytes", "go_memstats_heap_objects", "go_memstats_stack_inuse_bytes", "go_goroutines", "sipd_edge_transactions", "kamailio_shm_real_used", "pss_bytes"}

func (s holdSample) value(k string) (float64, bool) {
	if k == "pss_bytes" {
		return float64(s.pssKB) * 1024, true
	}
	v, ok := s.mem[k]
	return v, ok
}

func (h *holdResult) summarize(feed time.Duration) {
	var plateau []holdSample
	for _, s := range h.samples {
		if s.at >= h.hold+holdLinger && s.at <= feed {
			plateau = append(plateau, s)
		}
	}
	if len(plateau) < 2 {
		return
	}
	var n float64
	for _, s := range plateau {
		n += float64(s.inFlight)
	}
	h.inFlight = n / float64(len(plateau))
	h.perCall = map[string]float64{}
	h.plateauDrift = map[string]float64{}
	half := len(plateau) / 2
	for _, k := range memKeys {
		base, ok := h.base.value(k)
		if !ok {
			continue
		}
		mean := func(ss []holdSample) float64 {
			var t float64
			for _, s := range ss {
				v, _ := s.value(k)
				t += v
			}
			return t / float64(len(ss))
		}
		if h.inFlight > 0 {
			h.perCall[k] = (mean(plateau) - base) / h.inFlight
			h.plateauDrift[k] = (mean(plateau[half:]) - mean(plateau[:half])) / h.inFlight
		}
	}
}
