package e2e

import (
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// scenario returns the absolute path of a sipp scenario in scenarios/.
func scenario(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("scenarios", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("scenario %s: %v", name, err)
	}
	return p
}

// sippTransport maps "udp"/"tcp" to sipp's -t mode: one socket each way.
func sippTransport(network string) string {
	if network == "tcp" {
		return "t1"
	}
	return "u1"
}

// sippRun is one sipp process, writing its statistics, unexpected messages
// and message trace to files in a test directory.
type sippRun struct {
	name                                string
	statFile, errFile, msgFile, outFile string
	cmd                                 *exec.Cmd
	done                                chan struct{}
	err                                 error
}

// startSipp starts sipp with args plus the tracing options; the process is
// killed when the test ends if still running.
func startSipp(t *testing.T, name string, args ...string) *sippRun {
	t.Helper()
	bin := sippPath(t)
	dir := t.TempDir()
	s := &sippRun{
		name:     name,
		statFile: filepath.Join(dir, name+"_stat.csv"),
		errFile:  filepath.Join(dir, name+"_errors.log"),
		msgFile:  filepath.Join(dir, name+"_messages.log"),
		outFile:  filepath.Join(dir, name+"_screen.log"),
		done:     make(chan struct{}),
	}
	all := append([]string{
		"-nostdin",
		"-trace_stat", "-stf", s.statFile, "-fd", "1",
		"-trace_err", "-error_file", s.errFile,
		"-trace_msg", "-message_file", s.msgFile,
	}, args...)
	out, err := os.Create(s.outFile)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(bin, all...)
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting sipp %s: %v", name, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		out.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		select {
		case <-s.done:
		default:
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
	})
	return s
}

// wait waits up to timeout for sipp to exit and returns its exit code. If it
// is still running, it asks sipp to stop (SIGUSR1: finish the calls in
// progress), then kills it, and fails the test.
func (s *sippRun) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(timeout):
		_ = s.cmd.Process.Signal(syscall.SIGUSR1)
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.done
		}
		t.Errorf("sipp %s still running after %s; stopped it", s.name, timeout)
	}
	var exit *exec.ExitError
	switch {
	case s.err == nil:
		return 0
	case errors.As(s.err, &exit):
		return exit.ExitCode()
	default:
		t.Fatalf("sipp %s: %v", s.name, s.err)
		return -1
	}
}

// running reports whether sipp has not exited yet.
func (s *sippRun) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// sippStats are sipp's cumulative counters from the last line of its
// -trace_stat file.
type sippStats map[string]string

// Int returns a counter, or -1 if absent.
func (st sippStats) Int(name string) int {
	v, ok := st[name]
	if !ok {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return -1
	}
	return n
}

// stats reads the final statistics.
func (s *sippRun) stats(t *testing.T) sippStats {
	t.Helper()
	f, err := os.Open(s.statFile)
	if err != nil {
		t.Fatalf("sipp %s statistics: %v\n%s", s.name, err, tailFile(s.outFile, 30))
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.Comma = ';'
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("sipp %s statistics %s: %d rows, %v", s.name, filepath.Base(s.statFile), len(rows), err)
	}
	st := sippStats{}
	last := rows[len(rows)-1]
	for i, h := range rows[0] {
		if i < len(last) {
			st[h] = last[i]
		}
	}
	return st
}

// summary is a one-line digest of the counters that matter here.
func (st sippStats) summary() string {
	var b strings.Builder
	for _, k := range []string{"TotalCallCreated", "SuccessfulCall(C)", "FailedCall(C)", "FailedUnexpectedMessage(C)",
		"FailedTimeoutOnRecv(C)", "FailedMaxUDPRetrans(C)", "FailedTcpClosed(C)", "FailedTcpConnect(C)",
		"FailedCannotSendMessage(C)", "OutOfCallMsgs(C)", "DeadCallMsgs(C)", "Retransmissions(C)"} {
		fmt.Fprintf(&b, "%s=%s ", k, st[k])
	}
	return strings.TrimSpace(b.String())
}

// explain returns what sipp logged about failures: the start of its
// unexpected-message log, the end of its screen.
func (s *sippRun) explain() string {
	var b strings.Builder
	if data, err := os.ReadFile(s.errFile); err == nil && len(data) > 0 {
		if len(data) > 4000 {
			data = data[:4000]
		}
		fmt.Fprintf(&b, "---- sipp %s errors (first 4000 bytes) ----\n%s\n", s.name, data)
	}
	fmt.Fprintf(&b, "---- sipp %s screen (end) ----\n%s\n", s.name, tailFile(s.outFile, 25))
	return b.String()
}

// firstMessages returns the first n bytes of the SIP message trace, which
// shows the first call's messages as sipp sent and received them.
func (s *sippRun) firstMessages(n int) string {
	data, err := os.ReadFile(s.msgFile)
	if err != nil {
		return err.Error()
	}
	if len(data) > n {
		data = data[:n]
	}
	return string(data)
}

// sippRegister registers contact for user at the edge with sipp's
// register.xml over network, and fails the test unless it got a 200.
func sippRegister(t *testing.T, network, edge, user, contact string, expires int) {
	t.Helper()
	s := startSipp(t, "register-"+user+"-"+network,
		"-sf", scenario(t, "register.xml"),
		"-t", sippTransport(network),
		"-i", loopback, "-p", strconv.Itoa(freePort(t)), "-mp", strconv.Itoa(freePort(t)),
		"-key", "user", user, "-key", "domain", loopback,
		"-key", "contact", contact, "-key", "expires", strconv.Itoa(expires),
		"-m", "1", "-l", "1",
		"-timeout", "10s", "-timeout_error", "-recv_timeout", "5000",
		edge)
	if code := s.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("sipp REGISTER %s -> %s over %s: exit %d, want 0\n%s\n%s", user, contact, network, code, s.explain(), s.firstMessages(3000))
	}
}
