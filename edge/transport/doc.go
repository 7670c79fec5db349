// Package transport is the edge's SIP transport layer: it binds UDP and TCP
// listeners (IPv4 and IPv6), frames SIP messages on streams (RFC 3261 section
// 18.3), answers RFC 5626 double-CRLF keep-alives, keeps a table of open
// connections, and sends messages over UDP sockets or over existing or newly
// dialled connections.
//
// A Layer is built with New, which does no I/O, and run with Run, which binds
// every listener, serves until its context ends, and returns after every
// goroutine it started has exited. Every received message is handed to a
// Handler from the goroutine that read it; the Handler must not block for long.
//
// TLS, WS and WSS have Proto values but are not served yet: Run refuses such
// listeners and Send refuses such destinations with ErrUnsupportedProto.
package transport
