//go:build !linux

package transport

import (
	"errors"
	"net"
	"syscall"
)

// reuseportSupported is false: this build does not set SO_REUSEPORT.
const reuseportSupported = false

var errNoSockopt = errors.New("transport: socket option not supported on this platform")

func setReuseport(_, _ string, _ syscall.RawConn) error { return errNoSockopt }

// sockBuffer cannot read the granted buffer size on this platform.
func sockBuffer(c *net.UDPConn, read bool) (int, bool) { return 0, false }

func forceBuffer(c *net.UDPConn, read bool, size int) error { return errNoSockopt }
