// Package e2e holds sipd's end-to-end tests: they build the real binaries
// (sipd, edge, registrar, router), start them on free loopback ports with
// generated configs, and drive them with sipp scenarios (scenarios/) and with
// raw SIP over UDP and TCP sockets.
//
// Run them from the services module:
//
//	go test ./e2e/ -count=1 -v -timeout 15m
//
// SIPD_BIN_DIR names a directory that already holds the binaries (as built by
// `make build`); without it the tests build them once into a temporary
// directory. The call tests need sipp (SIPp 3.6 or later): without it they
// skip, or fail when CI=true. -short skips the whole package.
package e2e
