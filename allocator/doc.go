// Package allocator provides size-classed pooled buffers for the edge's hot
// paths (datagram reads, TCP stream buffers, message serialization), with a
// usage report of the allocation pattern and warm-up at start.
//
// An Allocator rounds each request up to a size class and hands out a *Buf
// from that class's free list, or allocates one when the list is empty (a
// miss). Put returns a Buf; what goes back is capped: a Buf whose slice no
// longer has its class's capacity (it was grown or replaced) is dropped, and
// nothing is retained past Config.MaxBytes or Config.MaxPerClass. Requests
// larger than the largest class are allocated plainly and counted apart.
//
// Unlike sync.Pool, retained buffers survive garbage collections, so the
// retained memory is bounded by configuration rather than by GC timing, and
// the pool can be filled before traffic arrives. Report describes the
// allocation pattern per class (gets, hits, misses, bytes in use, retained,
// wasted by rounding); it is exported to Prometheus by Collector and saved to
// a file by Run at stop. At the next start Run reads that file and Warm
// pre-fills each class in proportion to its peak use in the last run,
// bounded by a share of MaxBytes, in the way OpenSIPS warms its memory
// allocator from the fragment pattern of the previous run.
package allocator
