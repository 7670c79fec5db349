// Package registrar is sipd's location service: it keeps the bindings of
// addresses-of-record (AORs) to contacts that REGISTER requests create
// (RFC 3261 section 10.3), answers lookups for calls to local users, and
// removes bindings when they expire.
//
// A Registrar serves the registrar.v1 gRPC API. Its state lives behind the
// Store interface: NewMemoryStore is the embedded, sharded in-memory store;
// package redisstore keeps bindings in Redis, shared by replicas and kept
// across restarts; both pass the contract suite (package storetest).
//
// Run expires bindings on a timer wheel, and every binding change is
// published as a registrarv1.BindingEvent on SubjectFor(aor) (NATS), in
// version order per AOR.
package registrar
