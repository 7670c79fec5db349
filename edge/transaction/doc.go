// Package transaction is the edge's RFC 3261 section 17 transaction layer,
// with the RFC 6026 Accepted states.
//
// Server and client transactions, INVITE and non-INVITE, live in a sharded
// table keyed by branch, sent-by and method (RFC 2543 fallback keys for
// requests without the magic cookie). Every timer (A, B, D, E, F, G, H, I,
// J, K, L, M and the INVITE fr_inv timer) sits on one hashed timer wheel
// driven by the goroutine of Layer.Run; no transaction owns a goroutine or a
// time.Timer.
//
// A transaction never calls its user while holding its own lock, so a user
// may call back into the transaction from a callback. Lock order: a user's
// lock may be held while calling a transaction method, never the reverse.
package transaction
