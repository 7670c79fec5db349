package allocator_test

import (
	"fmt"

	"github.com/sipd/sipd/allocator"
)

func Example() {
	a, err := allocator.New(allocator.Config{}) // 256 B .. 64 KiB, 32 MiB retained at most
	if err != nil {
		panic(err)
	}
	// A datagram read: a 64 KiB buffer, the message copied out, the buffer
	// back at once.
	buf := a.Get(64 << 10)
	n := copy(buf.B, "OPTIONS sip:edge.example.com SIP/2.0\r\n...")
	msg := append([]byte(nil), buf.B[:n]...)
	a.Put(buf)

	// Serialization: a buffer of the message's size, put back after the send.
	out := a.Get(len(msg))
	copy(out.B, msg)
	a.Put(out)

	for _, c := range a.Report().Classes {
		if c.Gets > 0 {
			fmt.Printf("class %d: %d gets, %d hits, %d retained\n", c.Size, c.Gets, c.Hits, c.Retained)
		}
	}
	// Output:
	// class 256: 1 gets, 0 hits, 1 retained
	// class 65536: 1 gets, 0 hits, 1 retained
}
