// Command sipd-bench compares the sipd edge with Kamailio as SIP proxies on
// one machine, the way docs/BENCHMARKS.md describes: sipp drives calls at
// fixed rates through (a) the edge with a static route, (b) Kamailio with
// an equivalent minimal configuration and (c) edge, router and registrar
// over gRPC, each proxy pinned to one CPU and sipp to the other. It reports
// CPU per call, INVITE-to-200 times, failures, retransmissions, UDP drops and
// memory, per rate, as Markdown.
//
// Run it with make bench-sip (or bench-sip-quick). It needs sipp, kamailio,
// kamcmd, taskset and gcc, at least two CPUs, and bin/ built.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// bench is one comparison run.
type bench struct {
	binDir, benchDir, work string
	sipp, kamailio, shim   string
	proxyCPU, loadCPU      int
	rcvbuf                 int
	nice                   int
	step, warm             time.Duration
	log                    io.Writer

	mu    sync.Mutex
	procs []*exec.Cmd
}

// track remembers a started process so that cleanup can kill it.
func (b *bench) track(c *exec.Cmd) {
	b.mu.Lock()
	b.procs = append(b.procs, c)
	b.mu.Unlock()
}

// killAll kills the process group of every process the bench started that
// is still running.
func (b *bench) killAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.procs {
		if c.Process != nil && c.ProcessState == nil {
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		}
	}
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// pinned is the command line that runs args on cpu at the bench's niceness.
func (b *bench) pinned(cpu int, args ...string) (string, []string) {
	full := append([]string{"-c", strconv.Itoa(cpu)}, args...)
	if b.nice == 0 {
		return "taskset", full
	}
	return "nice", append([]string{"-n", strconv.Itoa(b.nice), "taskset"}, full...)
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort(proto string) (int, error) {
	if proto == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port, nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func main() {
	var (
		binDir   = flag.String("bin", "bin", "directory with the sipd binaries (edge, registrar, router)")
		benchDir = flag.String("benchdir", "bench", "directory with kamailio/, sipp/ and clockshim/")
		rates    = flag.String("rates", "250,500,1000,2000,3000,4000", "offered call rates (calls/s); rates above the loader's ceiling are skipped")
		proxies  = flag.String("proxies", "edge,kamailio,chain", "proxies to measure: edge, kamailio, chain")
		step     = flag.Duration("step", 10*time.Second, "measured time per rate and proxy")
		warm     = flag.Duration("warmup", 2*time.Second, "unmeasured warm-up at the step's rate")
		hold     = flag.Duration("hold", 30*time.Second, "call hold time of the memory test; 0 skips it")
		holdMax  = flag.Int("hold-max-rate", 1000, "highest call rate of the memory test")
		holdPx   = flag.String("hold-proxies", "edge,kamailio", "proxies of the memory test")
		ceilRate = flag.String("ceiling-rates", "2000,4000,6000,8000", "rates tried for the loader's ceiling; empty skips it")
		proxyCPU = flag.Int("proxy-cpu", 0, "CPU the proxy under test is pinned to")
		loadCPU  = flag.Int("load-cpu", 1, "CPU sipp is pinned to")
		rcvbuf   = flag.Int("socket-buffer", 4<<20, "UDP receive and send buffer of every proxy and of sipp (bytes)")
		out      = flag.String("out", "", "also write the Markdown report to this file")
		keep     = flag.Bool("keep", false, "keep the work directory (configs, logs, sipp traces)")
		nice     = flag.Int("nice", 0, "niceness of proxies and sipp (e.g. -10 to shield the run from niced background work; needs root)")
		retries  = flag.Int("retries", 0, "times a noisy step (machine busy outside proxy and loader) is run again")
	)
	flag.Parse()
	for _, p := range []*string{binDir, benchDir} {
		if a, err := filepath.Abs(*p); err == nil {
			*p = a
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	b := &bench{binDir: *binDir, benchDir: *benchDir, proxyCPU: *proxyCPU, loadCPU: *loadCPU,
		rcvbuf: *rcvbuf, nice: *nice, step: *step, warm: *warm, log: os.Stderr}
	err := b.run(ctx, plan{
		rates: parseInts(*rates), ceiling: parseInts(*ceilRate), proxies: splitList(*proxies),
		hold: *hold, holdMax: *holdMax, holdProxies: splitList(*holdPx), out: *out, keep: *keep, retries: *retries,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "sipd-bench:", err)
		os.Exit(1)
	}
}

// plan is what to measure.
type plan struct {
	rates, ceiling []int
	proxies        []string
	hold           time.Duration
	holdMax        int
	holdProxies    []string
	out            string
	keep           bool
	retries        int
}

func (b *bench) run(ctx context.Context, p plan) (err error) {
	if err := b.preflight(); err != nil {
		return err
	}
	b.work, err = os.MkdirTemp("", "sipd-bench-")
	if err != nil {
		return err
	}
	defer func() {
		b.killAll()
		if p.keep || err != nil {
			b.logf("work directory kept: %s", b.work)
		} else {
			os.RemoveAll(b.work)
		}
	}()
	if b.shim, err = buildShim(ctx, b.benchDir, b.work); err != nil {
		return err
	}
	rep := &report{started: time.Now(), env: environment(b)}

	// The loader's own ceiling: sipp caller straight to sipp callee.
	if len(p.ceiling) > 0 {
		b.logf("measuring the loader ceiling (no proxy)")
		for _, rate := range p.ceiling {
			res, err := b.step1(ctx, "", rate, 5*time.Second)
			if err != nil {
				return err
			}
			rep.ceilingSteps = append(rep.ceilingSteps, res)
			b.logf("  loader %d cps: achieved %.0f, failed %d, retrans %d, p99 %.2f ms, sipp cpu %.0f%%: %s",
				rate, res.achieved, res.run.failed, res.retrans, res.p99, res.loaderPct, res.verdict())
			if !res.pass {
				break
			}
			rep.ceiling = res.achieved
		}
	}

	for _, rate := range p.rates {
		if rep.ceiling > 0 && float64(rate) > rep.ceiling*1.05 {
			b.logf("skipping %d cps: above the loader ceiling (%.0f cps)", rate, rep.ceiling)
			rep.skipped = append(rep.skipped, rate)
			continue
		}
		for _, px := range p.proxies {
			if rep.failedTwice(px) {
				continue
			}
			b.logf("%s at %d cps", px, rate)
			res, err := b.step1(ctx, px, rate, b.step)
			for try := 1; err == nil && res.noisy() && try <= p.retries; try++ {
				b.logf("  noisy (%s): again after waiting for an idle machine", strings.Join(res.notes, "; "))
				waitIdle(ctx, 30*time.Second)
				again, err2 := b.step1(ctx, px, rate, b.step)
				if err2 == nil && again.otherCPU < res.otherCPU {
					again.notes = append(again.notes, fmt.Sprintf("retry %d", try))
					res = again
				}
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.logf("  %s at %d cps: %v", px, rate, err)
				res = &result{proxy: px, rate: rate, err: err.Error()}
			} else {
				b.logf("  achieved %.0f cps, %.1f us/call, cpu %.0f%%, p50 %.2f p99 %.2f ms, failed %d, retrans %d, rcvbuf errs %d: %s",
					res.achieved, res.cpuPerCall, res.cpuPct, res.p50, res.p99, res.run.failed, res.retrans, res.rcvbufErr, res.verdict())
			}
			rep.add(res)
		}
	}

	if p.hold > 0 {
		rate := p.holdMax
		for _, px := range p.holdProxies {
			if best := rep.best(px); best > 0 && best < rate {
				rate = best
			}
		}
		for _, px := range p.holdProxies {
			b.logf("memory: %s, %d cps, %s hold", px, rate, p.hold)
			h, err := b.holdTest(ctx, px, rate, p.hold)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.logf("  %s hold test: %v", px, err)
				h = &holdResult{proxy: px, rate: rate, hold: p.hold, err: err.Error()}
			}
			rep.holds = append(rep.holds, h)
		}
	}

	md := rep.markdown()
	fmt.Print(md)
	if p.out != "" {
		if err := os.MkdirAll(filepath.Dir(p.out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p.out, []byte(md), 0o644); err != nil {
			return err
		}
		b.logf("report written to %s", p.out)
	}
	return nil
}

// preflight finds the tools and checks the CPUs.
func (b *bench) preflight() error {
	var errs []error
	look := func(name string) string {
		p, err := exec.LookPath(name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s not found (Debian: apt-get install %s)", name, map[string]string{
				"sipp": "sip-tester", "kamailio": "kamailio", "kamcmd": "kamailio", "taskset": "util-linux", "gcc": "gcc"}[name]))
		}
		return p
	}
	b.sipp = look("sipp")
	b.kamailio = look("kamailio")
	look("kamcmd")
	look("taskset")
	look("gcc")
	for _, bin := range []string{"edge", "registrar", "router"} {
		if _, err := os.Stat(filepath.Join(b.binDir, bin)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w (run make build)", bin, err))
		}
	}
	if n := numCPU(); n < 2 || b.proxyCPU >= n || b.loadCPU >= n || b.proxyCPU == b.loadCPU {
		errs = append(errs, fmt.Errorf("need two distinct CPUs for proxy (%d) and loader (%d); this machine has %d", b.proxyCPU, b.loadCPU, n))
	}
	return errors.Join(errs...)
}

func numCPU() int {
	b, _ := os.ReadFile("/sys/devices/system/cpu/online")
	s := strings.TrimSpace(string(b))
	n := 0
	for _, part := range strings.Split(s, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		z := a
		if ok {
			z, _ = strconv.Atoi(hi)
		}
		n += z - a + 1
	}
	return n
}

// buildShim compiles the clock shim into dir.
func buildShim(ctx context.Context, benchDir, dir string) (string, error) {
	out := filepath.Join(dir, "clockshim.so")
	cmd := exec.CommandContext(ctx, "gcc", "-O2", "-shared", "-fPIC", "-o", out, filepath.Join(benchDir, "clockshim", "clockshim.c"), "-ldl")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the clock shim: %v: %s", err, b)
	}
	return out, nil
}

// waitIdle waits, at most max, for a second in which the machine is busy
// less than a tenth of a CPU (niced work aside); it returns the busy share
// it saw last.
func waitIdle(ctx context.Context, max time.Duration) float64 {
	deadline := time.Now().Add(max)
	for {
		a := readCPUTimes()
		t := time.Now()
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(time.Second):
		}
		busy := busyCPUs(a, readCPUTimes(), time.Since(t))
		if busy < 0.1 || time.Now().After(deadline) {
			return busy
		}
	}
}

func parseInts(s string) []int {
	var out []int
	for _, f := range splitList(s) {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
