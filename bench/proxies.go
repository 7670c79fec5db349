package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// Proxy names, in report order.
const (
	proxyEdge     = "edge"
	proxyKamailio = "kamailio"
	proxyChain    = "chain"
)

// proxyLabel is a proxy's name in the report.
var proxyLabel = map[string]string{
	proxyEdge:     "sipd edge (static route)",
	proxyKamailio: "Kamailio (tm, rr)",
	proxyChain:    "sipd edge+router+registrar",
}

// running is a proxy under test: its processes, where calls go, and how to
// stop it.
type running struct {
	name    string
	addr    string // host:port calls are sent to
	user    string // Request-URI user
	domain  string // Request-URI host
	cmds    []*exec.Cmd
	metrics []string // Prometheus /metrics addresses (Go processes)
	ctl     string   // Kamailio's binrpc socket
	done    []chan error
}

// pids lists every process of the proxy (with Kamailio's forked workers).
func (r *running) pids() []int {
	var out []int
	for _, c := range r.cmds {
		out = append(out, descendants(c.Process.Pid)...)
	}
	return out
}

// stop ends the proxy: SIGTERM, then SIGKILL to the process group.
func (r *running) stop() {
	for _, c := range r.cmds {
		_ = syscall.Kill(c.Process.Pid, syscall.SIGTERM)
	}
	for i, c := range r.cmds {
		select {
		case <-r.done[i]:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-r.done[i]
		}
	}
}

// memory samples what the proxy reports about its memory: the Go heap
// from runtime metrics (summed over its Go processes), or Kamailio's
// shared memory in use.
func (r *running) memory(ctx context.Context, loadCPU int) map[string]float64 {
	out := map[string]float64{}
	for _, m := range r.metrics {
		for k, v := range scrape(ctx, m) {
			out[k] += v
		}
	}
	if r.ctl != "" {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		b, err := exec.CommandContext(cctx, "taskset", "-c", strconv.Itoa(loadCPU), "kamcmd", "-s", "unix:"+r.ctl, "core.shmmem").Output()
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
				if !ok {
					continue
				}
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					out["kamailio_shm_"+strings.TrimSpace(k)] = f
				}
			}
		}
	}
	return out
}

// scrapeNames are the Prometheus series the bench reads.
var scrapeNames = map[string]bool{
	"go_memstats_heap_inuse_bytes":  true,
	"go_memstats_heap_alloc_bytes":  true,
	"go_memstats_heap_objects":      true,
	"go_memstats_stack_inuse_bytes": true,
	"go_goroutines":                 true,
	"sipd_edge_transactions":        true,
	"go_memstats_mallocs_total":     true,
	"go_memstats_alloc_bytes_total": true,
	"go_gc_duration_seconds_count":  true,
}

func scrape(ctx context.Context, addr string) map[string]float64 {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		if scrapeNames[name] || strings.HasPrefix(name, "sipd_edge_transactions") {
			if f, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				out[name] += f
			}
		}
	}
	return out
}

// startProcess starts a proxy process pinned to the proxy CPU, logging to
// dir/name.log.
func (b *bench) startProcess(ctx context.Context, r *running, dir, name string, args ...string) error {
	bin, full := b.pinned(b.proxyCPU, args...)
	cmd := exec.Command(bin, full...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); log.Close() }()
	b.track(cmd)
	r.cmds = append(r.cmds, cmd)
	r.done = append(r.done, done)
	return nil
}

// waitBound waits until every port is bound, or a process exits.
func waitBound(ctx context.Context, r *running, ports map[int]string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok := true
		for port, proto := range ports {
			if !portBound(proto, port) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		for i, d := range r.done {
			select {
			case err := <-d:
				d <- err
				return fmt.Errorf("%s: process %d exited: %v", r.name, i, err)
			default:
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: ports %v not bound in time", r.name, ports)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startProxy starts the named proxy forwarding to the callee on uasPort.
func (b *bench) startProxy(ctx context.Context, name, tag string, uasPort int) (*running, error) {
	dir := filepath.Join(b.work, "proxy", tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	port, err := freePort("udp")
	if err != nil {
		return nil, err
	}
	r := &running{name: name, addr: fmt.Sprintf("127.0.0.1:%d", port), user: "bench", domain: "uas.bench"}
	ports := map[int]string{port: "udp"}
	var startErr error
	switch name {
	case proxyEdge:
		mp, _ := freePort("tcp")
		cfg := fmt.Sprintf(`# sipd edge as a plain stateful proxy (static route), for make bench-sip.
log: {level: warn, format: text}
telemetry: {metrics_listen: "127.0.0.1:%d"}
edge:
  listen: ["udp:127.0.0.1:%d"]
  static_routes:
    - {domain: uas.bench, destination: "sip:127.0.0.1:%d"}
  transport: {udp_read_buffer: %d, udp_write_buffer: %d}
`, mp, port, uasPort, b.rcvbuf, b.rcvbuf)
		path := filepath.Join(dir, "edge.yaml")
		if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		r.metrics = []string{fmt.Sprintf("127.0.0.1:%d", mp)}
		ports[mp] = "tcp"
		startErr = b.startProcess(ctx, r, dir, "edge", filepath.Join(b.binDir, "edge"), "-config", path)
	case proxyKamailio:
		r.ctl = filepath.Join(dir, "kamailio_ctl")
		path := filepath.Join(dir, "kamailio.cfg")
		if err := b.writeKamailioCfg(path, port, uasPort, r.ctl); err != nil {
			return nil, err
		}
		startErr = b.startProcess(ctx, r, dir, "kamailio", b.kamailio, "-f", path, "-DD", "-E",
			"-x", "tlsf", "-X", "tlsf", "-m", "1024", "-M", "16", "-Y", dir)
	case proxyChain:
		r.domain = "127.0.0.1"
		g1, _ := freePort("tcp")
		g2, _ := freePort("tcp")
		m1, _ := freePort("tcp")
		m2, _ := freePort("tcp")
		m3, _ := freePort("tcp")
		common := fmt.Sprintf("log: {level: warn, format: text}\ngrpc: {registrar_listen: \"127.0.0.1:%d\", router_listen: \"127.0.0.1:%d\", registrar_address: \"127.0.0.1:%d\", router_address: \"127.0.0.1:%d\"}\n", g1, g2, g1, g2)
		files := map[string]string{
			"registrar": common + fmt.Sprintf("telemetry: {metrics_listen: \"127.0.0.1:%d\"}\n", m2),
			"router":    common + fmt.Sprintf("telemetry: {metrics_listen: \"127.0.0.1:%d\"}\n", m3),
			"edge": common + fmt.Sprintf("telemetry: {metrics_listen: \"127.0.0.1:%d\"}\nedge:\n  listen: [\"udp:127.0.0.1:%d\"]\n  transport: {udp_read_buffer: %d, udp_write_buffer: %d}\n",
				m1, port, b.rcvbuf, b.rcvbuf),
		}
		for _, svc := range []string{"registrar", "router", "edge"} {
			path := filepath.Join(dir, svc+".yaml")
			if err := os.WriteFile(path, []byte(files[svc]), 0o644); err != nil {
				return nil, err
			}
			if err := b.startProcess(ctx, r, dir, svc, filepath.Join(b.binDir, svc), "-config", path); err != nil {
				startErr = err
				break
			}
		}
		r.metrics = []string{fmt.Sprintf("127.0.0.1:%d", m1), fmt.Sprintf("127.0.0.1:%d", m2), fmt.Sprintf("127.0.0.1:%d", m3)}
		ports[g1], ports[g2], ports[m1] = "tcp", "tcp", "tcp"
	default:
		return nil, fmt.Errorf("unknown proxy %q", name)
	}
	if startErr == nil {
		startErr = waitBound(ctx, r, ports)
	}
	if startErr == nil && name == proxyChain {
		startErr = b.register(ctx, r.addr, uasPort, r.user, r.domain)
	}
	if startErr != nil {
		r.stop()
		return nil, fmt.Errorf("%w (logs in %s)", startErr, dir)
	}
	return r, nil
}

// kamailioCfg fills bench/kamailio/kamailio.cfg.
type kamailioCfg struct {
	LogLevel   int
	Children   int
	DisableTCP bool
	Listen     string
	Next       string
	RcvBuf     int
	CtlSocket  string
}

func (b *bench) writeKamailioCfg(path string, port, uasPort int, ctl string) error {
	t, err := template.ParseFiles(filepath.Join(b.benchDir, "kamailio", "kamailio.cfg"))
	if err != nil {
		return fmt.Errorf("reading kamailio template: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return t.Execute(f, kamailioCfg{
		LogLevel: 0, Children: 2, DisableTCP: true,
		Listen:    fmt.Sprintf("127.0.0.1:%d", port),
		Next:      fmt.Sprintf("127.0.0.1:%d", uasPort),
		RcvBuf:    b.rcvbuf,
		CtlSocket: ctl,
	})
}
