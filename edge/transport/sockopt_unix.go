//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package transport

import (
	"net"
	"syscall"
)

// sockBuffer returns the SO_RCVBUF (read) or SO_SNDBUF size the kernel
// granted to c. Linux reports twice the usable size, its bookkeeping included.
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
	return n, true
}
