//go:build linux

package transport

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// reuseportSupported reports whether SO_REUSEPORT can spread a listening
// address over several sockets and processes.
const reuseportSupported = true

// setReuseport is a net.ListenConfig Control function setting SO_REUSEPORT.
func setReuseport(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// sockBuffer returns the usable SO_RCVBUF (read) or SO_SNDBUF size of c.
// Linux reads back twice the size set, its bookkeeping included, so the
// value is halved.
func sockBuffer(c *net.UDPConn, read bool) (int, bool) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	opt := syscall.SO_SNDBUF
	if read {
		opt = syscall.SO_RCVBUF
	}
	var n int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		n, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, opt)
	}); err != nil || gerr != nil {
		return 0, false
	}
	return n / 2, true
}

// forceBuffer sets the buffer past net.core.rmem_max / wmem_max with
// SO_RCVBUFFORCE / SO_SNDBUFFORCE, which needs CAP_NET_ADMIN.
func forceBuffer(c *net.UDPConn, read bool, size int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	opt := syscall.SO_SNDBUFFORCE
	if read {
		opt = syscall.SO_RCVBUFFORCE
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, opt, size)
	}); err != nil {
		return err
	}
	return serr
}
