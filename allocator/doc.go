// Package allocator provides size-classed pooled buffers for the edge's hot
// paths, with usage reports and warm-up at start.
package allocator
