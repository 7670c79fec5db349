//go:build linux

package transport

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// pollWait bounds one epoll_wait, so a poller notices its context ending.
const pollWait = 250 * time.Millisecond

// poller parks idle TCP connections: it watches them with its own epoll
// sets, one per shard (a connection's shard is its id modulo the shard
// count), and starts a reading goroutine for a connection when bytes or a
// close arrive. The sockets stay registered with the Go runtime's netpoller
// as well; the poller only decides when a goroutine is worth having. Each
// shard's goroutine also closes the parked connections past the idle
// timeout, sweeping at most once a second.
type poller struct {
	l      *Layer
	shards []*pollShard
}

type pollShard struct {
	epfd   int
	mu     sync.Mutex
	parked map[uint64]*conn
}

// newPoller opens one epoll set per shard (GOMAXPROCS shards, at least 1).
func newPoller(l *Layer) (*poller, error) {
	n := max(1, min(64, runtimeProcs()))
	p := &poller{l: l}
	for range n {
		fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("creating epoll set: %w", err)
		}
		p.shards = append(p.shards, &pollShard{epfd: fd, parked: make(map[uint64]*conn)})
	}
	return p, nil
}

func (p *poller) shard(id uint64) *pollShard { return p.shards[id%uint64(len(p.shards))] }

// start runs one goroutine per shard, counted in wg, until ctx ends.
func (p *poller) start(ctx context.Context, wg *sync.WaitGroup) {
	for _, s := range p.shards {
		wg.Go(func() { p.run(ctx, s, wg) })
	}
}

// close closes the epoll sets; call it after the shard goroutines exited.
func (p *poller) close() {
	for _, s := range p.shards {
		_ = syscall.Close(s.epfd)
	}
}

// park hands c, whose reader is about to exit with nothing buffered, to its
// shard. It reports false if c cannot be watched (it is then closed).
func (p *poller) park(c *conn) bool {
	s := p.shard(c.id)
	s.mu.Lock()
	s.parked[c.id] = c
	s.mu.Unlock()
	rc, err := c.raw.(syscall.Conn).SyscallConn()
	var cerr error
	if err == nil {
		err = rc.Control(func(fd uintptr) {
			ev := syscall.EpollEvent{
				Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
				Fd:     int32(uint32(c.id)),
				Pad:    int32(uint32(c.id >> 32)),
			}
			// Re-arm the one-shot registration; the first park adds it.
			// Level-triggered, so bytes that came before this are reported.
			cerr = syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_MOD, int(fd), &ev)
			if cerr == syscall.ENOENT {
				cerr = syscall.EpollCtl(s.epfd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
			}
		})
	}
	if err == nil {
		err = cerr
	}
	if err != nil {
		s.mu.Lock()
		delete(s.parked, c.id)
		s.mu.Unlock()
		p.l.logger.Debug("parking connection", "conn_id", c.id, "err", err)
		p.l.closeConn(c)
		return true // closed: nothing left for the reader to do
	}
	return true
}

// forget drops a closed connection from its shard. Closing the socket
// removes it from the epoll set.
func (p *poller) forget(c *conn) {
	s := p.shard(c.id)
	s.mu.Lock()
	delete(s.parked, c.id)
	s.mu.Unlock()
}

func (p *poller) parkedCount() int {
	n := 0
	for _, s := range p.shards {
		s.mu.Lock()
		n += len(s.parked)
		s.mu.Unlock()
	}
	return n
}

// run waits for parked connections to become readable and starts their
// readers, and closes the idle ones.
func (p *poller) run(ctx context.Context, s *pollShard, wg *sync.WaitGroup) {
	events := make([]syscall.EpollEvent, 128)
	lastSweep := time.Now()
	for ctx.Err() == nil {
		n, err := syscall.EpollWait(s.epfd, events, int(pollWait/time.Millisecond))
		if err != nil && err != syscall.EINTR {
			p.l.logger.Error("waiting on parked connections", "err", err)
			return
		}
		for _, ev := range events[:max(n, 0)] {
			id := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			s.mu.Lock()
			c := s.parked[id]
			delete(s.parked, id)
			s.mu.Unlock()
			if c != nil && ctx.Err() == nil {
				// Counted: this goroutine is itself in wg, so Add is safe.
				wg.Go(func() { p.l.readConn(c) })
			}
		}
		if now := time.Now(); now.Sub(lastSweep) >= time.Second {
			lastSweep = now
			p.sweep(s, now)
		}
	}
}

// sweep closes the parked connections of s past the idle timeout.
func (p *poller) sweep(s *pollShard, now time.Time) {
	var idle []*conn
	s.mu.Lock()
	for id, c := range s.parked {
		if c.idleExpired(now) {
			idle = append(idle, c)
			delete(s.parked, id)
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		p.l.stats.idleClosed.Add(1)
		p.l.logger.Debug("closing idle connection", "remote", c.remote.String(), "conn_id", c.id)
		p.l.closeConn(c)
	}
}
