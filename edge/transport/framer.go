package transport

import (
	"bytes"
	"io"
	"sync"
)

// frameKind says what the start of a stream buffer holds.
type frameKind uint8

const (
	frameMore    frameKind = iota // more bytes are needed
	frameSkip                     // n stray CR/LF bytes between messages, to drop
	framePing                     // a double-CRLF keep-alive (RFC 5626), to answer with CRLF
	frameMessage                  // one complete SIP message of n bytes
	frameError                    // framing failed; n bytes of the header section were read
)

// framer finds SIP message boundaries in a byte stream (RFC 3261 section
// 18.3). It remembers how far it has searched, so feeding a message one byte
// at a time costs linear, not quadratic, time.
type framer struct {
	max     int  // largest message, header section included
	started bool // a message has begun (its first non-CR/LF byte was seen)
	scanned int  // bytes searched for the end of headers without finding it
	total   int  // length of the current message once its headers are read; 0 before
}

func (f *framer) reset() { f.started, f.scanned, f.total = false, 0, 0 }

var crlfcrlf = []byte("\r\n\r\n")

// next reports what buf, the unconsumed bytes of the stream, starts with.
// For frameSkip, framePing and frameMessage, the caller consumes n bytes; for
// frameError, err is the reason and buf[:n] is what was read of the header
// section; for frameMore, the caller reads more and calls next with buf
// extended (same start).
func (f *framer) next(buf []byte) (kind frameKind, n int, err error) {
	if len(buf) == 0 {
		return frameMore, 0, nil
	}
	if !f.started {
		if c := buf[0]; c == '\r' || c == '\n' {
			if bytes.HasPrefix(buf, crlfcrlf) {
				return framePing, 4, nil
			}
			if len(buf) < 4 && bytes.HasPrefix(crlfcrlf, buf) {
				return frameMore, 0, nil
			}
			if c == '\r' && len(buf) > 1 && buf[1] == '\n' {
				return frameSkip, 2, nil
			}
			return frameSkip, 1, nil
		}
		f.started = true
	}
	if f.total == 0 {
		end := headerEnd(buf, f.scanned)
		if end < 0 {
			if len(buf) >= f.max {
				f.reset()
				return frameError, min(len(buf), f.max), ErrHeaderTooLarge
			}
			f.scanned = max(0, len(buf)-3)
			return frameMore, 0, nil
		}
		if end > f.max {
			f.reset()
			return frameError, f.max, ErrHeaderTooLarge
		}
		cl, err := contentLength(buf[:end], f.max)
		if err != nil {
			f.reset()
			return frameError, end, err
		}
		if end+cl > f.max {
			f.reset()
			return frameError, end, ErrMessageTooLarge
		}
		f.total = end + cl
	}
	if len(buf) < f.total {
		return frameMore, 0, nil
	}
	n = f.total
	f.reset()
	return frameMessage, n, nil
}

// headerEnd returns the length of the header section of buf including the
// empty line that ends it, searching from offset from, or -1 when the end is
// not in buf yet. A bare LF is tolerated as a line end.
func headerEnd(buf []byte, from int) int {
	for i := from; i < len(buf); {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j + 1 // just past this LF
		if i < len(buf) && buf[i] == '\n' {
			return i + 1
		}
		if i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n' {
			return i + 2
		}
	}
	return -1
}

// contentLength returns the value of the Content-Length header (long or
// compact form "l") in the header section hdr, 0 if there is none. A value
// that is not a decimal number, or several values that differ, give
// ErrBadContentLength; a value over limit gives ErrMessageTooLarge.
func contentLength(hdr []byte, limit int) (int, error) {
	// Skip the start line.
	i := bytes.IndexByte(hdr, '\n')
	if i < 0 {
		return 0, nil
	}
	rest := hdr[i+1:]
	value, found := -1, false
	var num clNumber
	inCL := false
	for len(rest) > 0 {
		var line []byte
		if k := bytes.IndexByte(rest, '\n'); k >= 0 {
			line, rest = rest[:k], rest[k+1:]
		} else {
			line, rest = rest, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break // the empty line ending the header section
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A folded continuation of the previous header (RFC 3261 section 7.3.1).
			if inCL {
				num.feed(' ')
				for _, c := range line {
					num.feed(c)
				}
			}
			continue
		}
		if inCL {
			v, err := num.value(limit)
			if err != nil {
				return 0, err
			}
			if found && v != value {
				return 0, ErrBadContentLength
			}
			value, found, inCL = v, true, false
		}
		name, val, ok := bytes.Cut(line, []byte{':'})
		if !ok {
			continue
		}
		name = bytes.TrimRight(name, " \t")
		if !bytes.EqualFold(name, []byte("content-length")) && !bytes.EqualFold(name, []byte("l")) {
			continue
		}
		inCL = true
		num = clNumber{}
		for _, c := range val {
			num.feed(c)
		}
	}
	if inCL {
		v, err := num.value(limit)
		if err != nil {
			return 0, err
		}
		if found && v != value {
			return 0, ErrBadContentLength
		}
		value, found = v, true
	}
	if !found {
		return 0, nil // no Content-Length on a stream: no body
	}
	return value, nil
}

// clNumber parses a Content-Length value fed one byte at a time: optional
// whitespace, decimal digits, optional whitespace.
type clNumber struct {
	n      int
	digits int
	state  uint8 // 0 leading space, 1 digits, 2 trailing space, 3 bad
	big    bool
}

func (p *clNumber) feed(c byte) {
	switch {
	case c == ' ' || c == '\t' || c == '\r':
		if p.state == 1 {
			p.state = 2
		}
	case c >= '0' && c <= '9':
		if p.state == 0 || p.state == 1 {
			p.state = 1
			p.digits++
			if p.n > maxMessageSize {
				p.big = true // stop growing; the value is over any limit
			} else {
				p.n = p.n*10 + int(c-'0')
			}
		} else {
			p.state = 3
		}
	default:
		p.state = 3
	}
}

func (p *clNumber) value(limit int) (int, error) {
	if p.state == 3 || p.digits == 0 {
		return 0, ErrBadContentLength
	}
	if p.big || p.n > limit {
		return 0, ErrMessageTooLarge
	}
	return p.n, nil
}

// stream reads SIP messages from a byte stream. It reads into a small buffer
// and grows it only while a message is incomplete, going back to a small
// buffer once the large message has been consumed. Small buffers of the
// default size come from a pool and go back to it when the stream is
// released (a connection parked idle, or closed), so an idle connection
// holds no buffer at all.
type stream struct {
	r          io.Reader
	f          framer
	initial    int
	buf        []byte
	start, end int
}

// poolBufSize is the size of pooled stream buffers: the initial buffer of a
// stream whose MaxMessageSize is at least this.
const poolBufSize = 4096

var bufPool = sync.Pool{New: func() any { b := make([]byte, poolBufSize); return &b }}

func newStream(r io.Reader, maxSize int) *stream {
	s := &stream{}
	s.init(r, maxSize)
	return s
}

func (s *stream) init(r io.Reader, maxSize int) {
	*s = stream{r: r, f: framer{max: maxSize}, initial: min(poolBufSize, maxSize)}
}

// empty reports whether no unconsumed bytes are buffered.
func (s *stream) empty() bool { return s.start == s.end }

// smallBuf returns a buffer of the initial size.
func (s *stream) smallBuf() []byte {
	if s.initial == poolBufSize {
		return *bufPool.Get().(*[]byte)
	}
	return make([]byte, s.initial)
}

// release drops the buffer when nothing is pending, giving a pooled one
// back. It reports whether the stream now holds no buffer.
func (s *stream) release() bool {
	if s.start != s.end {
		return false
	}
	if cap(s.buf) == poolBufSize && s.initial == poolBufSize {
		b := s.buf[:poolBufSize]
		bufPool.Put(&b)
	}
	s.buf, s.start, s.end = nil, 0, 0
	return true
}

// next returns the next frame: frameMessage with the message, framePing for
// a keep-alive to answer, or frameError with what was read of the header
// section and the framing error. data is valid until the next call. A read
// error is returned with kind frameMore.
func (s *stream) next() (kind frameKind, data []byte, err error) {
	for {
		for s.start < s.end {
			k, n, ferr := s.f.next(s.buf[s.start:s.end])
			switch k {
			case frameSkip:
				s.start += n
				continue
			case framePing, frameMessage, frameError:
				data = s.buf[s.start : s.start+n]
				s.start += n
				return k, data, ferr
			}
			break // frameMore
		}
		if err := s.fill(); err != nil {
			return frameMore, nil, err
		}
	}
}

// fill reads once into the buffer, making room first.
func (s *stream) fill() error {
	pending := s.end - s.start
	switch {
	case pending == 0:
		s.start, s.end = 0, 0
		if cap(s.buf) > s.initial || s.buf == nil {
			s.buf = s.smallBuf() // release a grown buffer
		}
	case cap(s.buf) > s.initial && pending < s.initial && s.f.total < s.initial:
		// A large message was consumed and what follows fits a small buffer:
		// release the large one.
		nb := s.smallBuf()
		copy(nb, s.buf[s.start:s.end])
		s.buf, s.start, s.end = nb, 0, pending
	case s.end == len(s.buf):
		if s.start > 0 && pending < len(s.buf)/2 {
			copy(s.buf, s.buf[s.start:s.end])
		} else {
			size := min(2*len(s.buf), s.f.max)
			if size <= pending {
				// The framer reports a framing error before this can happen.
				return ErrMessageTooLarge
			}
			nb := make([]byte, size)
			copy(nb, s.buf[s.start:s.end])
			s.buf = nb
		}
		s.start, s.end = 0, pending
	}
	n, err := s.r.Read(s.buf[s.end:])
	s.end += n
	if n > 0 {
		return nil // handle the bytes; a lasting error comes back on the next read
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}
