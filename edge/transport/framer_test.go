package transport

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// chunkReader returns its data at most n bytes per Read.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.data))
	copy(p, r.data[:k])
	r.data = r.data[k:]
	return k, nil
}

// frame is one result of stream.next, copied.
type frame struct {
	kind frameKind
	data string
	err  error
}

// frames runs a stream over data delivered chunk bytes per read until EOF or a
// framing error.
func frames(t testing.TB, data string, chunk, maxSize int) []frame {
	t.Helper()
	s := newStream(&chunkReader{data: []byte(data), n: chunk}, maxSize)
	var out []frame
	for {
		k, d, err := s.next()
		if k == frameMore {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read error %v, want EOF", err)
			}
			return out
		}
		if len(d) > maxSize {
			t.Fatalf("frame of %d bytes over the %d limit", len(d), maxSize)
		}
		out = append(out, frame{k, string(d), err})
		if k == frameError {
			return out
		}
	}
}

func TestStreamFraming(t *testing.T) {
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
	msg := sipMsg(body)
	noCL := "ACK sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK2\r\n\r\n"
	compact := "MESSAGE sip:a@b SIP/2.0\r\nL :  5 \r\n\r\nhello"
	lower := "MESSAGE sip:a@b SIP/2.0\r\ncontent-LENGTH:3\r\n\r\nabc"
	folded := "MESSAGE sip:a@b SIP/2.0\r\nContent-Length:\r\n 3\r\n\r\nabc"
	bareLF := "MESSAGE sip:a@b SIP/2.0\nContent-Length: 3\n\nabc"
	big := "MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 3000\r\n\r\n" + strings.Repeat("x", 3000)
	const maxSize = 4096
	msgF := frame{frameMessage, msg, nil}
	ping := frame{framePing, "\r\n\r\n", nil}
	tests := []struct {
		name string
		in   string
		want []frame
	}{
		{name: "one message", in: msg, want: []frame{msgF}},
		{name: "pipelined", in: msg + msg + msg, want: []frame{msgF, msgF, msgF}},
		{name: "leading CRLFs skipped", in: "\r\n" + msg + "\r\n" + msg, want: []frame{msgF, msgF}},
		{name: "keep-alive", in: "\r\n\r\n", want: []frame{ping}},
		{name: "keep-alives around messages", in: "\r\n\r\n" + msg + "\r\n\r\n\r\n\r\n" + msg, want: []frame{ping, msgF, ping, ping, msgF}},
		{name: "single CRLF pong is not a ping", in: "\r\n" + msg, want: []frame{msgF}},
		{name: "missing content-length", in: noCL + msg, want: []frame{{frameMessage, noCL, nil}, msgF}},
		{name: "compact form with spaces", in: compact, want: []frame{{frameMessage, compact, nil}}},
		{name: "case-insensitive name", in: lower, want: []frame{{frameMessage, lower, nil}}},
		{name: "folded value", in: folded, want: []frame{{frameMessage, folded, nil}}},
		{name: "bare LF line ends", in: bareLF, want: []frame{{frameMessage, bareLF, nil}}},
		{name: "message grows the buffer", in: big + msg, want: []frame{{frameMessage, big, nil}, msgF}},
		{name: "body with CRLFCRLF", in: sipMsg("a\r\n\r\nb") + msg, want: []frame{{frameMessage, sipMsg("a\r\n\r\nb"), nil}, msgF}},
		{name: "incomplete at EOF", in: msg[:len(msg)-1], want: nil},
		{name: "non-numeric content-length", in: "INVITE sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\n",
			want: []frame{{frameError, "INVITE sip:a SIP/2.0\r\nContent-Length: 1x\r\n\r\n", ErrBadContentLength}}},
		{name: "negative content-length", in: msg + "INVITE sip:a SIP/2.0\r\nl: -3\r\n\r\n",
			want: []frame{msgF, {frameError, "INVITE sip:a SIP/2.0\r\nl: -3\r\n\r\n", ErrBadContentLength}}},
		{name: "empty content-length", in: "INVITE sip:a SIP/2.0\r\nContent-Length:\r\n\r\n",
			want: []frame{{frameError, "INVITE sip:a SIP/2.0\r\nContent-Length:\r\n\r\n", ErrBadContentLength}}},
		{name: "two digits groups", in: "INVITE sip:a SIP/2.0\r\nContent-Length: 1 2\r\n\r\n",
			want: []frame{{frameError, "INVITE sip:a SIP/2.0\r\nContent-Length: 1 2\r\n\r\n", ErrBadContentLength}}},
		{name: "conflicting content-lengths", in: "INVITE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab",
			want: []frame{{frameError, "INVITE sip:a SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n", ErrBadContentLength}}},
		{name: "content-length over the limit", in: "INVITE sip:a SIP/2.0\r\nContent-Length: 5000\r\n\r\n",
			want: []frame{{frameError, "INVITE sip:a SIP/2.0\r\nContent-Length: 5000\r\n\r\n", ErrMessageTooLarge}}},
		{name: "huge content-length", in: "INVITE sip:a SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n",
			want: []frame{{frameError, "INVITE sip:a SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n", ErrMessageTooLarge}}},
		{name: "headers plus body over the limit", in: "INVITE sip:a SIP/2.0\r\nContent-Length: 4090\r\n\r\n",
			want: []frame{{frameError, "INVITE sip:a SIP/2.0\r\nContent-Length: 4090\r\n\r\n", ErrMessageTooLarge}}},
		{name: "header section over the limit", in: "INVITE sip:a SIP/2.0\r\nX: " + strings.Repeat("y", maxSize),
			want: []frame{{frameError, ("INVITE sip:a SIP/2.0\r\nX: " + strings.Repeat("y", maxSize))[:maxSize], ErrHeaderTooLarge}}},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 7, 1 << 20} {
			t.Run(tt.name+"/chunk "+itoa(chunk), func(t *testing.T) {
				got := frames(t, tt.in, chunk, maxSize)
				if len(got) != len(tt.want) {
					t.Fatalf("got %d frames %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
				}
				for i := range got {
					if got[i].kind != tt.want[i].kind || got[i].data != tt.want[i].data || !errors.Is(got[i].err, tt.want[i].err) {
						t.Errorf("frame %d = %+v, want %+v", i, got[i], tt.want[i])
					}
				}
			})
		}
	}
}

// TestStreamReleasesBuffer checks that the buffer grown for a large message
// shrinks once it is consumed.
func TestStreamReleasesBuffer(t *testing.T) {
	big := sipMsg(strings.Repeat("x", 20000))
	small := sipMsg("")
	s := newStream(&chunkReader{data: []byte(big + small), n: 1 << 20}, 65535)
	if k, d, _ := s.next(); k != frameMessage || string(d) != big {
		t.Fatalf("first frame %v %d bytes", k, len(d))
	}
	if cap(s.buf) <= s.initial {
		t.Fatalf("buffer did not grow: %d", cap(s.buf))
	}
	if k, d, _ := s.next(); k != frameMessage || string(d) != small {
		t.Fatalf("second frame %v %q", k, d)
	}
	if _, _, err := s.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("third next = %v, want EOF", err)
	}
	if cap(s.buf) > s.initial {
		t.Errorf("buffer still %d bytes after the large message, want <= %d", cap(s.buf), s.initial)
	}
}

// TestStreamBufferBoundaries starts from a grown buffer holding exactly one
// small buffer's worth of a message whose header section is larger still:
// the buffer must not shrink below what is pending.
func TestStreamBufferBoundaries(t *testing.T) {
	long := "OPTIONS sip:a@b SIP/2.0\r\nX: " + strings.Repeat("y", 5000) + "\r\nContent-Length: 0\r\n\r\n"
	for _, pending := range []int{4095, 4096, 4097} {
		t.Run(itoa(pending), func(t *testing.T) {
			s := newStream(&chunkReader{data: []byte(long[pending:]), n: 1 << 20}, 65535)
			s.buf = make([]byte, 32768) // as if grown for an earlier large message
			s.end = copy(s.buf, long[:pending])
			k, d, err := s.next()
			if k != frameMessage || string(d) != long {
				t.Errorf("next = %v, %d bytes, %v; want the message", k, len(d), err)
			}
		})
	}
}

// FuzzFramer checks that the framer never panics, never returns a frame over
// the limit, and frames a stream the same however it is split into reads.
func FuzzFramer(f *testing.F) {
	seeds := []string{
		sipMsg("hello"),
		sipMsg("") + sipMsg("v=0\r\n"),
		"\r\n\r\n" + sipMsg(""),
		"INVITE sip:a SIP/2.0\r\nl: 3\r\n\r\nabc",
		"INVITE sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n",
		"INVITE sip:a SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nab",
		"INVITE sip:a SIP/2.0\nContent-Length: 2\n\nab",
		// RFC 4475 3.1.2.1: extraneous header field separators / Content-Length mismatch shapes.
		"INVITE sip:user@example.com SIP/2.0\r\nTo: sip:j.user@example.com\r\nFrom: sip:caller@example.net;tag=93942939o2\r\nContact: <sip:caller@hungry.example.net>\r\nCall-ID: 0ha0isndaksdj\r\nCSeq: 8 INVITE\r\nVia: SIP/2.0/UDP 135.180.130.133;branch=z9hG4bKkdjuw\r\nMax-Forwards: 70\r\nContent-Length: 9999\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n",
		"\r\n\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s), uint8(1))
		f.Add([]byte(s), uint8(13))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		const maxSize = 1024
		whole := frames(t, string(data), len(data)+1, maxSize)
		split := frames(t, string(data), int(chunk%64)+1, maxSize)
		if len(whole) != len(split) {
			t.Fatalf("whole read gives %d frames, split reads %d", len(whole), len(split))
		}
		for i := range whole {
			if whole[i].kind != split[i].kind || whole[i].data != split[i].data || !errors.Is(whole[i].err, split[i].err) {
				t.Fatalf("frame %d: whole %+v, split %+v", i, whole[i], split[i])
			}
		}
		var total int
		for _, fr := range whole {
			total += len(fr.data)
			if fr.kind == frameMessage && !bytes.Contains([]byte(fr.data), []byte("\n")) {
				t.Fatalf("message without a header section end: %q", fr.data)
			}
		}
		if total > len(data) {
			t.Fatalf("frames hold %d bytes of %d read", total, len(data))
		}
	})
}

// loopReader returns data over and over, a full buffer per read.
type loopReader struct {
	data []byte
	off  int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		k := copy(p[n:], r.data[r.off:])
		n += k
		r.off = (r.off + k) % len(r.data)
	}
	return n, nil
}

func BenchmarkFramer(b *testing.B) {
	for _, bc := range []struct {
		name string
		msg  string
	}{
		{name: "options", msg: sipMsg("")},
		{name: "invite with sdp", msg: "INVITE sip:bob@example.com SIP/2.0\r\n" +
			"Via: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\nMax-Forwards: 70\r\n" +
			"To: Bob <sip:bob@example.com>\r\nFrom: Alice <sip:alice@example.com>;tag=1928301774\r\n" +
			"Call-ID: a84b4c76e66710@pc33.example.com\r\nCSeq: 314159 INVITE\r\n" +
			"Contact: <sip:alice@192.0.2.1;transport=tcp>\r\nContent-Type: application/sdp\r\n" +
			"Content-Length: 142\r\n\r\n" + strings.Repeat("s", 142)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := newStream(&loopReader{data: []byte(bc.msg)}, DefaultMaxMessageSize)
			b.SetBytes(int64(len(bc.msg)))
			b.ReportAllocs()
			for b.Loop() {
				if k, _, err := s.next(); k != frameMessage {
					b.Fatalf("frame %v, %v", k, err)
				}
			}
		})
	}
}
