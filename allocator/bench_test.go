package allocator

import (
	"fmt"
	"sync"
	"testing"
)

// The benchmarks compare three ways to get a buffer of a size and give it
// back: this allocator ("allocator"), a plain make ("make", the garbage
// collector takes it back) and a sync.Pool of *[]byte per size ("syncpool",
// a pointer so Put does not allocate an interface). benchstat -col /impl
// sets them side by side.

var benchSizes = []int{256, 2048, 8192, 65536}

// sink keeps made buffers escaping, as they do in the edge.
var sink []byte

type getPut interface {
	get(n int) []byte
	put()
}

func newSyncPools() map[int]*sync.Pool {
	m := make(map[int]*sync.Pool)
	for _, size := range DefaultClasses() {
		m[size] = &sync.Pool{New: func() any { b := make([]byte, size); return &b }}
	}
	return m
}

func benchAllocator(b *testing.B) *Allocator {
	b.Helper()
	a, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

// touch writes the first and last byte, as a user of the buffer would.
func touch(p []byte) {
	p[0] = 1
	p[len(p)-1] = 1
}

func BenchmarkGetPut(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d/impl=make", size), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				p := make([]byte, size)
				touch(p)
				sink = p
			}
		})
		b.Run(fmt.Sprintf("size=%d/impl=syncpool", size), func(b *testing.B) {
			pool := newSyncPools()[size]
			b.ReportAllocs()
			for b.Loop() {
				bp := pool.Get().(*[]byte)
				touch((*bp)[:size])
				pool.Put(bp)
			}
		})
		b.Run(fmt.Sprintf("size=%d/impl=allocator", size), func(b *testing.B) {
			a := benchAllocator(b)
			b.ReportAllocs()
			for b.Loop() {
				buf := a.Get(size)
				touch(buf.B)
				a.Put(buf)
			}
		})
	}
}

func BenchmarkGetPutParallel(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d/impl=make", size), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var local []byte
				for pb.Next() {
					p := make([]byte, size)
					touch(p)
					local = p
				}
				_ = local
			})
		})
		b.Run(fmt.Sprintf("size=%d/impl=syncpool", size), func(b *testing.B) {
			pool := newSyncPools()[size]
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					bp := pool.Get().(*[]byte)
					touch((*bp)[:size])
					pool.Put(bp)
				}
			})
		})
		b.Run(fmt.Sprintf("size=%d/impl=allocator", size), func(b *testing.B) {
			a := benchAllocator(b)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					buf := a.Get(size)
					touch(buf.B)
					a.Put(buf)
				}
			})
		})
	}
}

// datagram is a typical SIP request as read from a UDP socket (about 900
// bytes).
var datagram = []byte("INVITE sip:bob@biloxi.example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n" +
	"Max-Forwards: 70\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n" +
	"To: Bob <sip:bob@biloxi.example.com>\r\nCall-ID: 3848276298220188511@atlanta.example.com\r\n" +
	"CSeq: 1 INVITE\r\nContact: <sip:alice@client.atlanta.example.com;transport=udp>\r\n" +
	"Content-Type: application/sdp\r\nContent-Length: 151\r\n\r\n" +
	"v=0\r\no=alice 2890844526 2890844526 IN IP4 client.atlanta.example.com\r\ns=-\r\n" +
	"c=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" +
	"a=sendrecv\r\na=ptime:20\r\na=maxptime:150\r\na=label:1\r\na=mid:audio\r\n" +
	"a=ssrc:1234 cname:alice\r\na=rtcp-mux\r\na=extra:padding-to-a-realistic-size-0123456789\r\n" +
	"a=extra:padding-to-a-realistic-size-0123456789\r\na=extra:padding-to-a-realistic-size-01234\r\n" +
	"a=extra:padding-to-a-realistic-size-0123456789\r\na=extra:padding-to-a-realistic-size-01234\r\n" +
	"a=extra:padding-to-a-realistic-size-0123456789\r\na=extra:padding-to-a-realistic-size-01234\r\n")

const readSize = 64 << 10 // a maximal datagram

// read stands for ReadFromUDP: it fills the front of buf with a datagram.
func read(buf []byte) int { return copy(buf, datagram) }

// BenchmarkDatagram is the edge's UDP read pattern: take a 64 KiB read
// buffer, read a datagram into it, copy the message out (what the parsed
// message keeps), give the read buffer back. "reuse" is one buffer per
// reader goroutine, what a read loop that parses synchronously can do
// without any pool; the pool matters when the read buffer must outlive the
// loop iteration (handed to a worker).
func BenchmarkDatagram(b *testing.B) {
	b.Run("impl=make", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		for b.Loop() {
			buf := make([]byte, readSize)
			n := read(buf)
			sink = append([]byte(nil), buf[:n]...)
		}
	})
	b.Run("impl=reuse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		buf := make([]byte, readSize)
		for b.Loop() {
			n := read(buf)
			sink = append([]byte(nil), buf[:n]...)
		}
	})
	b.Run("impl=syncpool", func(b *testing.B) {
		pool := newSyncPools()[readSize]
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		for b.Loop() {
			bp := pool.Get().(*[]byte)
			n := read(*bp)
			sink = append([]byte(nil), (*bp)[:n]...)
			pool.Put(bp)
		}
	})
	b.Run("impl=allocator", func(b *testing.B) {
		a := benchAllocator(b)
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		for b.Loop() {
			buf := a.Get(readSize)
			n := read(buf.B)
			sink = append([]byte(nil), buf.B[:n]...)
			a.Put(buf)
		}
	})
}

// BenchmarkDatagramParallel is BenchmarkDatagram with a reader per P.
func BenchmarkDatagramParallel(b *testing.B) {
	b.Run("impl=make", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		b.RunParallel(func(pb *testing.PB) {
			var out []byte
			for pb.Next() {
				buf := make([]byte, readSize)
				n := read(buf)
				out = append([]byte(nil), buf[:n]...)
			}
			_ = out
		})
	})
	b.Run("impl=reuse", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		b.RunParallel(func(pb *testing.PB) {
			buf := make([]byte, readSize)
			var out []byte
			for pb.Next() {
				n := read(buf)
				out = append([]byte(nil), buf[:n]...)
			}
			_ = out
		})
	})
	b.Run("impl=syncpool", func(b *testing.B) {
		pool := newSyncPools()[readSize]
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		b.RunParallel(func(pb *testing.PB) {
			var out []byte
			for pb.Next() {
				bp := pool.Get().(*[]byte)
				n := read(*bp)
				out = append([]byte(nil), (*bp)[:n]...)
				pool.Put(bp)
			}
			_ = out
		})
	})
	b.Run("impl=allocator", func(b *testing.B) {
		a := benchAllocator(b)
		b.ReportAllocs()
		b.SetBytes(int64(len(datagram)))
		b.RunParallel(func(pb *testing.PB) {
			var out []byte
			for pb.Next() {
				buf := a.Get(readSize)
				n := read(buf.B)
				out = append([]byte(nil), buf.B[:n]...)
				a.Put(buf)
			}
			_ = out
		})
	})
}
