//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package transport

import "net"

// sockBuffer cannot read the granted buffer size on this platform.
func sockBuffer(c *net.UDPConn, read bool) (int, bool) { return 0, false }
