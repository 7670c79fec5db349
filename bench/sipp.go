package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// sippRun is one bounded sipp UAC run and what it reported.
type sippRun struct {
	calls, ok, failed int
	retrans           int
	outOfCall         int
	rate              float64 // created calls per second, sipp's CallRate(C)
	rtt               []float64
	answered          float64 // calls answered per second: 200s over the time from the first to the last
	cpu               float64 // seconds of CPU the UAC used
	elapsed           time.Duration
}

func (r sippRun) percentile(p float64) float64 {
	if len(r.rtt) == 0 {
		return 0
	}
	s := slices.Clone(r.rtt)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// sippCommand builds a sipp command pinned to the loader CPU, with the
// clock shim preloaded.
func (b *bench) sippCommand(ctx context.Context, dir string, args ...string) *exec.Cmd {
	name, full := b.pinned(b.loadCPU, append([]string{b.sipp}, args...)...)
	cmd := exec.CommandContext(ctx, name, full...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LD_PRELOAD="+b.shim)
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// uacOpts are the parameters of one UAC run.
type uacOpts struct {
	target string // host:port the calls go to
	user   string // Request-URI user
	domain string // Request-URI host
	rate   int
	calls  int
	limit  int           // -l, calls in flight
	hold   time.Duration // -d, pause between ACK and BYE
	tag    string        // names the run's directory
}

// runUAC runs the caller until it has made o.calls calls or its time is up.
func (b *bench) runUAC(ctx context.Context, o uacOpts) (sippRun, error) {
	dir := filepath.Join(b.work, "sipp", o.tag)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sippRun{}, err
	}
	scen := filepath.Join(b.benchDir, "sipp", "uac.xml")
	budget := time.Duration(float64(o.calls)/float64(o.rate)*float64(time.Second)) + o.hold + 10*time.Second
	ctx, cancel := context.WithTimeout(ctx, budget+15*time.Second)
	defer cancel()
	port, err := freePort("udp")
	if err != nil {
		return sippRun{}, err
	}
	cmd := b.sippCommand(ctx, dir, o.target,
		"-sf", scen, "-i", "127.0.0.1", "-p", strconv.Itoa(port),
		"-s", o.user, "-key", "domain", o.domain,
		"-r", strconv.Itoa(o.rate), "-rp", "1000", "-m", strconv.Itoa(o.calls), "-l", strconv.Itoa(o.limit),
		"-d", strconv.FormatInt(o.hold.Milliseconds(), 10),
		"-recv_timeout", "5000", "-timeout", fmt.Sprintf("%ds", int(budget.Seconds())),
		"-buff_size", strconv.Itoa(b.rcvbuf), "-nostdin",
		"-trace_stat", "-fd", "1", "-trace_rtt", "-rtt_freq", "50", "-trace_err")
	log, err := os.Create(filepath.Join(dir, "uac.out"))
	if err != nil {
		return sippRun{}, err
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	err = cmd.Run()
	r := sippRun{elapsed: time.Since(start)}
	if ps := cmd.ProcessState; ps != nil {
		r.cpu = (ps.UserTime() + ps.SystemTime()).Seconds()
	}
	if ctx.Err() != nil {
		return r, fmt.Errorf("sipp uac %s: no end within %s", o.tag, budget+15*time.Second)
	}
	// sipp exits 1 when some calls failed; the statistics tell.
	if err != nil && (cmd.ProcessState == nil || cmd.ProcessState.ExitCode() > 1) {
		return r, fmt.Errorf("sipp uac %s: %v (see %s)", o.tag, err, log.Name())
	}
	st, err := lastStat(dir, "uac_")
	if err != nil {
		return r, err
	}
	r.calls = st.int("OutgoingCall(C)")
	r.ok = st.int("SuccessfulCall(C)")
	r.failed = st.int("FailedCall(C)")
	r.retrans = st.int("Retransmissions(C)")
	r.outOfCall = st.int("OutOfCallMsgs(C)")
	r.rate = st.float("CallRate(C)")
	var first, last float64
	r.rtt, first, last, err = readRTT(dir)
	if len(r.rtt) > 1 && last > first {
		r.answered = float64(len(r.rtt)-1) / ((last - first) / 1000)
	}
	return r, err
}

// uas is a running sipp callee.
type uas struct {
	cmd  *exec.Cmd
	dir  string
	port int
	done chan error
}

// startUAS starts the callee on port; with reg, it first registers
// user@domain through registrar from that port.
func (b *bench) startUAS(ctx context.Context, tag string, port int) (*uas, error) {
	dir := filepath.Join(b.work, "sipp", tag+"-uas")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cmd := b.sippCommand(ctx, dir, "-sf", filepath.Join(b.benchDir, "sipp", "uas.xml"),
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-buff_size", strconv.Itoa(b.rcvbuf),
		"-nostdin", "-trace_stat", "-fd", "1", "-trace_err")
	log, err := os.Create(filepath.Join(dir, "uas.out"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting sipp uas: %w", err)
	}
	u := &uas{cmd: cmd, dir: dir, port: port, done: make(chan error, 1)}
	go func() { u.done <- cmd.Wait(); log.Close() }()
	b.track(cmd)
	deadline := time.Now().Add(5 * time.Second)
	for !portBound("udp", port) {
		if time.Now().After(deadline) {
			u.stop()
			return nil, fmt.Errorf("sipp uas did not bind udp port %d", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return u, nil
}

// cpu is the callee's CPU so far, in seconds.
func (u *uas) cpu() float64 { return cpuSeconds([]int{u.cmd.Process.Pid}) }

// retrans is the callee's retransmission count from its last statistics line.
func (u *uas) retrans() int {
	st, err := lastStat(u.dir, "uas_")
	if err != nil {
		return 0
	}
	return st.int("Retransmissions(C)")
}

// stop ends the callee: SIGUSR1 (sipp's graceful quit), then SIGKILL.
func (u *uas) stop() {
	_ = syscall.Kill(u.cmd.Process.Pid, syscall.SIGUSR1)
	select {
	case <-u.done:
	case <-time.After(3 * time.Second):
		_ = syscall.Kill(-u.cmd.Process.Pid, syscall.SIGKILL)
		<-u.done
	}
}

// register runs reg.xml once from port, binding user@domain there.
func (b *bench) register(ctx context.Context, target string, port int, user, domain string) error {
	dir := filepath.Join(b.work, "sipp", "register")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := b.sippCommand(ctx, dir, target, "-sf", filepath.Join(b.benchDir, "sipp", "reg.xml"),
		"-i", "127.0.0.1", "-p", strconv.Itoa(port), "-s", user, "-key", "domain", domain,
		"-m", "1", "-recv_timeout", "5000", "-timeout", "10s", "-nostdin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("registering %s@%s: %v: %s", user, domain, err, lastLines(string(out), 5))
	}
	return nil
}

// stat is one line of sipp's -trace_stat file by column name.
type stat map[string]string

func (s stat) int(k string) int {
	v, _ := strconv.Atoi(s[k])
	return v
}

func (s stat) float(k string) float64 {
	v, _ := strconv.ParseFloat(s[k], 64)
	return v
}

// lastStat reads the last line of the statistics file prefix*_.csv in dir.
func lastStat(dir, prefix string) (stat, error) {
	files, _ := filepath.Glob(filepath.Join(dir, prefix+"*_.csv"))
	if len(files) == 0 {
		return nil, fmt.Errorf("no sipp statistics in %s", dir)
	}
	f, err := os.Open(files[0])
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var head, last []string
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ";")
		if head == nil {
			head = fs
			continue
		}
		last = fs
	}
	if last == nil {
		return nil, fmt.Errorf("empty sipp statistics %s", files[0])
	}
	s := stat{}
	for i, k := range head {
		if i < len(last) {
			s[k] = last[i]
		}
	}
	return s, nil
}

// readRTT reads every INVITE-to-200 time (ms) of the run from sipp's
// -trace_rtt file, and when the first and the last 200 came (ms since
// sipp started).
func readRTT(dir string) (rtt []float64, first, last float64, err error) {
	files, _ := filepath.Glob(filepath.Join(dir, "uac_*_rtt.csv"))
	if len(files) == 0 {
		return nil, 0, 0, fmt.Errorf("no sipp rtt trace in %s", dir)
	}
	f, err := os.Open(files[0])
	if err != nil {
		return nil, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), ";")
		if len(fs) < 3 || fs[2] != "1" {
			continue
		}
		v, err1 := strconv.ParseFloat(fs[1], 64)
		at, err2 := strconv.ParseFloat(fs[0], 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if len(rtt) == 0 {
			first = at
		}
		last = at
		rtt = append(rtt, v)
	}
	return rtt, first, last, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
