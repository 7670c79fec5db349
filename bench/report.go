package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// report collects a run's results.
type report struct {
	started      time.Time
	env          [][2]string
	ceilingSteps []*result
	ceiling      float64 // highest passing loader rate, calls/s
	results      []*result
	skipped      []int
	holds        []*holdResult
}

func (r *report) add(res *result) { r.results = append(r.results, res) }

// failedTwice reports whether px failed its last two rates: higher rates
// are not worth the time.
func (r *report) failedTwice(px string) bool {
	n := 0
	for i := len(r.results) - 1; i >= 0 && n < 2; i-- {
		if r.results[i].proxy != px {
			continue
		}
		if r.results[i].pass {
			return false
		}
		n++
	}
	return n == 2
}

// best is the highest passing rate of px (0 when none).
func (r *report) best(px string) int {
	b := 0
	for _, res := range r.results {
		if res.proxy == px && res.pass && res.rate > b {
			b = res.rate
		}
	}
	return b
}

func (r *report) find(px string, rate int) *result {
	for _, res := range r.results {
		if res.proxy == px && res.rate == rate {
			return res
		}
	}
	return nil
}

// environment records what the numbers depend on.
func environment(b *bench) [][2]string {
	first := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil && len(out) == 0 {
			return "?"
		}
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				return l
			}
		}
		return "?"
	}
	goVer := first("go", "version", filepath.Join(b.binDir, "edge"))
	if i := strings.Index(goVer, ": "); i >= 0 {
		goVer = goVer[i+2:]
	}
	built := "?"
	if fi, err := os.Stat(filepath.Join(b.binDir, "edge")); err == nil {
		built = fi.ModTime().UTC().Format(time.RFC3339)
	}
	return [][2]string{
		{"date", time.Now().UTC().Format(time.RFC3339)},
		{"commit", first("git", "rev-parse", "HEAD") + dirty() + " (HEAD when the run started; the binaries in " + b.binDir + " were built " + built + ")"},
		{"CPU", fmt.Sprintf("%s, %d CPUs online", cpuModel(), numCPU())},
		{"kernel", first("uname", "-r")},
		{"Go (edge binary)", goVer},
		{"Kamailio", first(b.kamailio, "-v")},
		{"sipp", strings.TrimSpace(first(b.sipp, "-v"))},
		{"pinning", fmt.Sprintf("proxy on CPU %d, sipp caller and callee on CPU %d (taskset), niceness %d", b.proxyCPU, b.loadCPU, b.nice)},
		{"sysctls", fmt.Sprintf("net.core.rmem_max=%s wmem_max=%s rmem_default=%s wmem_default=%s", readSysctl("net.core.rmem_max"), readSysctl("net.core.wmem_max"), readSysctl("net.core.rmem_default"), readSysctl("net.core.wmem_default"))},
		{"socket buffers", fmt.Sprintf("%d bytes asked by every proxy and sipp (edge udp_read_buffer/udp_write_buffer, Kamailio maxbuffer, sipp -buff_size)", b.rcvbuf)},
		{"step", fmt.Sprintf("%s measured after a %s warm-up, fresh proxy per step", b.step, b.warm)},
	}
}

// dirty marks a commit whose tree has uncommitted changes.
func dirty() string {
	out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 {
		return " (with uncommitted changes)"
	}
	return ""
}

func (r *report) markdown() string {
	var w strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&w, format, args...) }
	p("# sipd SIP proxy benchmark\n\n")
	for _, kv := range r.env {
		p("- **%s**: %s\n", kv[0], kv[1])
	}
	p("- **pass**: failed calls <= 0.1%%, no retransmissions (caller or callee), p99 INVITE->200 <= 50 ms, no UDP receive-buffer drops, proxy CPU <= 80%% of its core, achieved >= 95%% of offered\n")

	p("\n## Loader ceiling (sipp caller straight to sipp callee)\n\n")
	p("| offered cps | achieved | p50 ms | p99 ms | failed | retrans | sipp CPU %% | verdict |\n|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, c := range r.ceilingSteps {
		p("| %d | %.0f | %.2f | %.2f | %d | %d | %.0f | %s |\n", c.rate, c.achieved, c.p50, c.p99, c.run.failed, c.retrans, c.loaderPct, c.verdict())
	}
	if r.ceiling > 0 {
		p("\nLoader ceiling: **%.0f calls/s**", r.ceiling)
	} else {
		p("\nLoader ceiling: not established (no step passed)")
	}
	if len(r.ceilingSteps) > 0 && !r.ceilingSteps[len(r.ceilingSteps)-1].pass {
		p(" (the next step, %d, failed)", r.ceilingSteps[len(r.ceilingSteps)-1].rate)
	}
	p(". A proxy result above 80%% of it is loader-bound.\n")

	var rates []int
	for _, res := range r.results {
		if !slices.Contains(rates, res.rate) {
			rates = append(rates, res.rate)
		}
	}
	p("\n## Per rate\n\nCPU us/call is utime+stime of all the proxy's processes over the measured calls; the ratio is against Kamailio at the same rate in this run. RSS is the sum of PSS (shared memory counted once).\n")
	for _, rate := range rates {
		p("\n### %d calls/s offered\n\n", rate)
		p("| proxy | achieved cps | CPU us/call | vs Kamailio | proxy CPU %% | p50 ms | p99 ms | failed | retrans | UDP rcvbuf errors | RSS (PSS) MiB | sipp CPU %% | verdict |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
		kam := r.find(proxyKamailio, rate)
		for _, res := range r.results {
			if res.rate != rate {
				continue
			}
			if res.err != "" {
				p("| %s | | | | | | | | | | | | error: %s |\n", proxyLabel[res.proxy], res.err)
				continue
			}
			ratio := "-"
			if kam != nil && kam.err == "" && kam.cpuPerCall > 0 {
				ratio = fmt.Sprintf("%.2fx", res.cpuPerCall/kam.cpuPerCall)
			}
			v := res.verdict()
			if res.pass && r.ceiling > 0 && float64(res.rate) > 0.8*r.ceiling {
				v += " (loader-bound)"
			}
			if len(res.notes) > 0 {
				v += "; " + strings.Join(res.notes, "; ")
			}
			p("| %s | %.0f | %.1f | %s | %.0f | %.2f | %.2f | %d | %d | %d | %.1f | %.0f | %s |\n",
				proxyLabel[res.proxy], res.achieved, res.cpuPerCall, ratio, res.cpuPct, res.p50, res.p99,
				res.run.failed, res.retrans, res.rcvbufErr, float64(res.pssKB)/1024, res.loaderPct, v)
		}
	}
	if len(r.skipped) > 0 {
		p("\nSkipped (above the loader ceiling): %v calls/s.\n", r.skipped)
	}

	p("\n## Go allocation per call\n\nFrom the Go processes' runtime metrics (all of the chain's processes summed), over the measured calls.\n\n| proxy | rate | mallocs/call | bytes allocated/call | GC cycles per 1000 calls |\n|---|---:|---:|---:|---:|\n")
	for _, res := range r.results {
		if len(res.perCallGo) == 3 {
			p("| %s | %d | %.0f | %.0f | %.2f |\n", proxyLabel[res.proxy], res.rate, res.perCallGo[0], res.perCallGo[1], res.perCallGo[2]*1000)
		}
	}

	p("\n## Highest passing rate\n\n| proxy | highest passing cps | CPU us/call there | first failing rate: why |\n|---|---:|---:|---|\n")
	for _, px := range []string{proxyEdge, proxyKamailio, proxyChain} {
		seen := false
		best := r.best(px)
		var bestRes, firstFail *result
		for _, res := range r.results {
			if res.proxy != px {
				continue
			}
			seen = true
			if res.rate == best {
				bestRes = res
			}
			if !res.pass && firstFail == nil {
				firstFail = res
			}
		}
		if !seen {
			continue
		}
		cpu, fail := "-", "none up to the highest rate run"
		if bestRes != nil {
			cpu = fmt.Sprintf("%.1f", bestRes.cpuPerCall)
		}
		if firstFail != nil {
			fail = fmt.Sprintf("%d: %s", firstFail.rate, firstFail.verdict())
		}
		p("| %s | %d | %s | %s |\n", proxyLabel[px], best, cpu, fail)
	}

	if len(r.holds) > 0 {
		p("\n## Memory per call in flight\n\nCalls held (pause between ACK and BYE) at a fixed rate; the plateau is from hold+36 s (calls in flight are flat from the hold time on; the transactions a proxy keeps after a call, 32 s in the edge, flatten 32 s later) to the end of the feed, 20 s later. Per call = (plateau mean - idle proxy) / calls in flight. Drift = second half of the plateau minus the first half, per call (flat is about 0). Go figures are runtime metrics summed over the proxy's processes (heap in use includes garbage not yet collected).\n\n")
		p("| proxy | rate | hold | calls in flight | figure | idle | per call | drift per call | failed | retrans |\n|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
		for _, h := range r.holds {
			if h.err != "" {
				p("| %s | %d | %s | | error: %s | | | | | |\n", proxyLabel[h.proxy], h.rate, h.hold, h.err)
				continue
			}
			for _, k := range memKeys {
				pc, ok := h.perCall[k]
				if !ok {
					continue
				}
				base, _ := h.base.value(k)
				p("| %s | %d | %s | %.0f | %s | %.0f | %.1f | %.1f | %d | %d |\n", proxyLabel[h.proxy], h.rate, h.hold, h.inFlight, k, base, pc, h.plateauDrift[k], h.run.failed, h.run.retrans)
			}
		}
		p("\nSamples (time, calls in flight, heap in use or shm used MiB, PSS MiB):\n\n")
		for _, h := range r.holds {
			var parts []string
			for _, s := range h.samples {
				v, ok := s.mem["go_memstats_heap_inuse_bytes"]
				if !ok {
					v = s.mem["kamailio_shm_real_used"]
				}
				parts = append(parts, fmt.Sprintf("%.0fs:%d/%.1f/%.1f", s.at.Seconds(), s.inFlight, v/(1<<20), float64(s.pssKB)/1024))
			}
			p("- %s: %s\n", proxyLabel[h.proxy], strings.Join(parts, " "))
		}
	}
	p("\nTotal time: %s\n", time.Since(r.started).Round(time.Second))
	return w.String()
}
