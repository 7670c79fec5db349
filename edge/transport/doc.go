// Package transport is the edge's SIP transport layer: it binds UDP, TCP,
// TLS, WS and WSS listeners (IPv4 and IPv6), frames SIP messages on streams
// (RFC 3261 section 18.3) and in WebSocket messages (RFC 7118), answers RFC
// 5626 double-CRLF keep-alives, keeps a table of open connections, and sends
// messages over UDP sockets or over existing or newly dialled connections.
//
// A Layer is built with New, which does no I/O, and run with Run, which loads
// the TLS files, binds every listener, serves until its context ends, and
// returns after every goroutine it started has exited. Every received
// message is handed to a Handler from the goroutine that read it; the
// Handler must not block for long.
//
// # How work is spread
//
// UDP: each listener is Config.UDPSockets sockets bound to one address with
// SO_REUSEPORT (default one per core), each read by its own goroutine; the
// kernel spreads datagrams over them by source address, and replies leave
// from any of them (they share the address).
//
// Streams: one goroutine per connection while it is active, scheduled by the
// Go runtime's netpoller over every core; there is no fixed worker per
// connection. The connection table is sharded (by connection id, and by
// protocol and remote address) so that many cores accept, look up and close
// connections without one lock. With Config.TCPReuseport several edge
// processes share one listening address and the kernel spreads new
// connections over them, which is how one address scales past one process's
// file limit.
//
// # Idle connections
//
// On Linux, a plain TCP connection that has received nothing for a second
// with nothing buffered is parked: its reader gives its read buffer back to
// a pool and exits, and a small poller (one epoll set and goroutine per
// shard, GOMAXPROCS shards) starts a new reader when bytes or a close
// arrive, and closes parked connections past TCPIdleTimeout. An idle
// connection then costs its socket, its entry in the table and a few hundred
// bytes of state, with no goroutine stack and no buffer. TLS and WebSocket
// connections keep their reader (the TLS record layer buffers on its own).
//
// # Limits
//
// MaxConnections bounds open stream connections: an accepted connection past
// it is closed at once (an orderly close before any data, counted in
// Stats.Refused) and a dial past it fails with ErrTooManyConns. Stream
// framing is by Content-Length and bounded by MaxMessageSize: a missing
// Content-Length means no body, and a bad or oversized one, or a header
// section past the limit, is a framing error that closes the connection after
// the Handler has seen it (so it can answer 400).
//
// # TLS
//
// TLS and WSS listeners serve Config.TLS's certificate (TLS 1.2 or later by
// default). The certificate and key files are checked at most every
// ReloadInterval, on the next handshake, and re-read when their modification
// time or size changed, so a renewed certificate is served without a restart
// (no signal needed); a pair that fails to load is logged and the previous
// one kept. Outbound TLS verifies the server against the system pool or
// TLS.CAFile, and against Dest.Host (or the address when Host is empty).
package transport
