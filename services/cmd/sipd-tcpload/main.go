// Command sipd-tcpload holds many registered, idle SIP connections against
// an edge, to measure what an idle connection costs.
//
// It opens -n TCP connections to the -target addresses (round robin), each
// from its own source address spread over 127.0.0.0/8 (-per-ip connections
// per address, starting after -src-offset addresses), at most -rate new
// connections a second. On each it sends a REGISTER for its own user and
// expects a 200. It then holds the connections for -hold, sending an RFC
// 5626 double-CRLF keep-alive every -keepalive and expecting the single CRLF
// answer, and closes them. Everything is bounded: the connection count, the
// rate, every read and write (-timeout) and the whole run.
//
// It prints "ready registered=N failed=M" once every connection has been
// tried, and a summary line at the end; the exit status is 1 when fewer than
// -min-ok connections registered. Run several processes (with distinct
// -src-offset and -user-offset) to go past one process's file limit.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	targets    []netip.AddrPort
	n          int
	rate       int
	perIP      int
	srcOffset  int
	userOffset int
	hold       time.Duration
	keepalive  time.Duration
	timeout    time.Duration
	domain     string
	expires    int
	minOK      int
}

type counters struct {
	registered, failedDial, failedRegister, keepaliveOK, keepaliveFail, dropped atomic.Int64
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sipd-tcpload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "127.0.0.1:5060", "comma-separated edge TCP addresses, used round robin")
	var o options
	fs.IntVar(&o.n, "n", 1000, "connections to open (at most 1000000)")
	fs.IntVar(&o.rate, "rate", 2000, "new connections a second (at most 100000)")
	fs.IntVar(&o.perIP, "per-ip", 64, "connections per source address in 127.0.0.0/8")
	fs.IntVar(&o.srcOffset, "src-offset", 0, "source addresses to skip (for several tool processes)")
	fs.IntVar(&o.userOffset, "user-offset", 0, "added to the connection index in user names")
	fs.DurationVar(&o.hold, "hold", time.Minute, "how long to hold the connections once all are open (at most 1h)")
	fs.DurationVar(&o.keepalive, "keepalive", 30*time.Second, "interval of CRLF keep-alives per connection")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "bound of each connect, REGISTER answer and keep-alive answer")
	fs.StringVar(&o.domain, "domain", "127.0.0.1", "registrar domain in the Request-URI, From and To")
	fs.IntVar(&o.expires, "expires", 3600, "Expires of each REGISTER")
	fs.IntVar(&o.minOK, "min-ok", 0, "exit 1 if fewer connections registered (0: all of -n)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var errs []error
	for _, s := range strings.Split(*target, ",") {
		ap, err := netip.ParseAddrPort(strings.TrimSpace(s))
		if err != nil {
			errs = append(errs, fmt.Errorf("-target %q: %w", s, err))
			continue
		}
		if !ap.Addr().Is4() || !ap.Addr().IsLoopback() {
			errs = append(errs, fmt.Errorf("-target %q: only 127.0.0.0/8 targets are allowed", s))
		}
		o.targets = append(o.targets, ap)
	}
	if o.n < 1 || o.n > 1_000_000 {
		errs = append(errs, fmt.Errorf("-n (%d) must be between 1 and 1000000", o.n))
	}
	if o.rate < 1 || o.rate > 100_000 {
		errs = append(errs, fmt.Errorf("-rate (%d) must be between 1 and 100000", o.rate))
	}
	if o.perIP < 1 || o.perIP > 10_000 {
		errs = append(errs, fmt.Errorf("-per-ip (%d) must be between 1 and 10000", o.perIP))
	}
	if o.hold < 0 || o.hold > time.Hour {
		errs = append(errs, fmt.Errorf("-hold (%s) must be between 0 and 1h", o.hold))
	}
	if o.keepalive < time.Second || o.timeout <= 0 {
		errs = append(errs, fmt.Errorf("-keepalive (%s) must be >= 1s and -timeout (%s) > 0", o.keepalive, o.timeout))
	}
	if last := o.srcOffset + (o.n+o.perIP-1)/o.perIP; o.srcOffset < 0 || last > 1<<24-2 {
		errs = append(errs, fmt.Errorf("-src-offset (%d) with -n (%d) and -per-ip (%d) runs past 127.255.255.254", o.srcOffset, o.n, o.perIP))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, "sipd-tcpload:", err)
		return 2
	}
	if o.minOK == 0 {
		o.minOK = o.n
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The whole run is bounded: ramp at the rate, hold, and slack for answers.
	ramp := time.Duration(o.n/o.rate+1) * time.Second
	ctx, cancel := context.WithTimeout(ctx, ramp+o.hold+3*o.timeout+10*time.Second)
	defer cancel()

	var c counters
	var wg sync.WaitGroup
	holdStart := make(chan struct{})
	var opened sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(min(o.rate, 1000)))
	defer tick.Stop()
	perTick := max(1, o.rate/1000)
	start := time.Now()
loop:
	for i := 0; i < o.n; {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
		}
		for k := 0; k < perTick && i < o.n; k, i = k+1, i+1 {
			opened.Add(1)
			wg.Go(func() { o.conn(ctx, i, &c, &opened, holdStart) })
		}
	}
	opened.Wait()
	fmt.Fprintf(stdout, "ready registered=%d failed=%d (dial %d, register %d) in %s\n",
		c.registered.Load(), c.failedDial.Load()+c.failedRegister.Load(), c.failedDial.Load(), c.failedRegister.Load(),
		time.Since(start).Round(time.Millisecond))
	close(holdStart)
	wg.Wait()
	fmt.Fprintf(stdout, "done registered=%d failed_dial=%d failed_register=%d keepalive_ok=%d keepalive_failed=%d dropped_during_hold=%d\n",
		c.registered.Load(), c.failedDial.Load(), c.failedRegister.Load(), c.keepaliveOK.Load(), c.keepaliveFail.Load(), c.dropped.Load())
	if c.registered.Load() < int64(o.minOK) {
		return 1
	}
	return 0
}

// source returns the source address of connection i.
func (o *options) source(i int) netip.Addr {
	k := uint32(o.srcOffset + i/o.perIP + 1) // 127.0.0.1 upwards
	return netip.AddrFrom4([4]byte{127, byte(k >> 16), byte(k >> 8), byte(k)})
}

// conn opens connection i, registers, waits for holdStart, holds the
// connection with keep-alives until the hold ends, and closes it.
func (o *options) conn(ctx context.Context, i int, c *counters, opened *sync.WaitGroup, holdStart <-chan struct{}) {
	once := sync.OnceFunc(opened.Done)
	defer once()
	src := o.source(i)
	to := o.targets[i%len(o.targets)]
	d := net.Dialer{Timeout: o.timeout, LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
	nc, err := d.DialContext(ctx, "tcp4", to.String())
	if err != nil {
		c.failedDial.Add(1)
		return
	}
	defer nc.Close()
	local := nc.LocalAddr().(*net.TCPAddr).AddrPort()
	user := "tcpload" + strconv.Itoa(o.userOffset+i)
	reg := fmt.Sprintf("REGISTER sip:%[1]s SIP/2.0\r\n"+
		"Via: SIP/2.0/TCP %[2]s;branch=z9hG4bK-tl%[3]d\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:%[4]s@%[1]s>;tag=tl%[3]d\r\n"+
		"To: <sip:%[4]s@%[1]s>\r\n"+
		"Call-ID: tcpload-%[3]d-%[4]s\r\n"+
		"CSeq: 1 REGISTER\r\n"+
		"Contact: <sip:%[4]s@%[2]s;transport=tcp>\r\n"+
		"Expires: %[5]d\r\n"+
		"Content-Length: 0\r\n\r\n", o.domain, local, i, user, o.expires)
	_ = nc.SetDeadline(time.Now().Add(o.timeout))
	if _, err := io.WriteString(nc, reg); err != nil {
		c.failedRegister.Add(1)
		return
	}
	code, err := readStatus(nc)
	if err != nil || code != 200 {
		c.failedRegister.Add(1)
		return
	}
	c.registered.Add(1)
	once()

	select {
	case <-holdStart:
	case <-ctx.Done():
		return
	}
	end := time.Now().Add(o.hold)
	// Spread the keep-alives over the interval.
	next := time.Now().Add(time.Duration(i%1000) * o.keepalive / 1000)
	for {
		wait := time.Until(next)
		if rest := time.Until(end); rest < wait {
			wait = rest
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !time.Now().Before(end) {
			return
		}
		next = next.Add(o.keepalive)
		_ = nc.SetDeadline(time.Now().Add(o.timeout))
		if _, err := nc.Write([]byte("\r\n\r\n")); err != nil {
			c.keepaliveFail.Add(1)
			c.dropped.Add(1)
			return
		}
		var b [2]byte
		if _, err := io.ReadFull(nc, b[:]); err != nil || b != [2]byte{'\r', '\n'} {
			c.keepaliveFail.Add(1)
			if err != nil {
				c.dropped.Add(1)
				return
			}
			continue
		}
		c.keepaliveOK.Add(1)
	}
}

// readStatus reads one SIP response (headers and a Content-Length body)
// and returns its status code.
func readStatus(r io.Reader) (int, error) {
	var buf []byte
	tmp := make([]byte, 2048)
	for len(buf) < 65536 {
		n, err := r.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if end := bytes.Index(buf, []byte("\r\n\r\n")); end >= 0 {
			line, _, _ := bytes.Cut(buf, []byte("\r\n"))
			f := strings.Fields(string(line))
			if len(f) < 2 || !strings.HasPrefix(f[0], "SIP/2.0") {
				return 0, fmt.Errorf("not a response: %q", line)
			}
			return strconv.Atoi(f[1])
		}
		if err != nil {
			return 0, err
		}
	}
	return 0, errors.New("response too large")
}
