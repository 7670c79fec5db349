// Package replicator carries registration and dialog changes between sites
// over NATS JetStream.
package replicator
