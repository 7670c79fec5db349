package edge

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// The edge parses with sipgo's header parsers, structurally only the
// headers sipgo parses by default (Via, From, To, Call-ID, CSeq,
// Max-Forwards, Contact, Route, Record-Route, Content-Length, Content-Type;
// the edge reads Expires, the credentials, Path, Supported and Require
// from their generic form), but builds the message itself: the header
// section is turned into one string and every header name and value is a
// slice of it, where sipgo copies each name and value apart. A message the
// fast path is not sure about (folded lines, comma-separated lists, any
// header a parser refuses, a body shorter than Content-Length) goes
// through sipgo's own parser, so both give the same message and the same
// error (FuzzParseMessage checks it).

// headerParsers are sipgo's default header parsers, by lower-case name.
var headerParsers = sip.DefaultHeadersParser()

// parseMessage parses one SIP message: a datagram or a framed stream message.
func parseMessage(data []byte) (sip.Message, error) {
	if m := fastParse(data); m != nil {
		return m, nil
	}
	return sip.ParseMessage(data)
}

// fastParse parses the common well-formed message, or returns nil.
func fastParse(data []byte) sip.Message {
	if len(data) > sip.ParseMaxMessageLength {
		return nil
	}
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return nil
	}
	head := string(data[:end+2]) // every line with its CRLF
	rest := data[end+4:]

	line, head, ok := cutLine(head)
	if !ok {
		return nil
	}
	msg := parseStartLine(line)
	if msg == nil {
		return nil
	}
	var cl *sip.ContentLengthHeader
	var lower [32]byte
	for head != "" {
		line, head, ok = cutLine(head)
		if !ok || line == "" || line[0] == ' ' || line[0] == '\t' {
			return nil
		}
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil
		}
		name := strings.TrimSpace(line[:colon])
		value := strings.TrimSpace(line[colon+1:])
		if len(name) > len(lower) || name == "" {
			msg.AppendHeader(sip.NewHeader(name, value))
			continue
		}
		ln := lower[:len(name)]
		for i := 0; i < len(name); i++ {
			c := name[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			ln[i] = c
		}
		p, known := headerParsers[string(ln)]
		if !known {
			msg.AppendHeader(sip.NewHeader(name, value))
			continue
		}
		h, err := p(ln, value)
		if err != nil {
			return nil // a list or an error: sipgo decides
		}
		if c, ok := h.(*sip.ContentLengthHeader); ok {
			cl = c
		}
		msg.AppendHeader(h)
	}

	size := len(rest)
	if cl != nil {
		size = int(*cl)
	}
	if size == 0 {
		return msg
	}
	if size > len(rest) || size > sip.ParseMaxMessageLength-(end+4) {
		return nil
	}
	msg.SetBody(bytes.Clone(rest[:size]))
	return msg
}

// cutLine returns the line before the first CRLF of s (which must have one
// and no other CR or LF in that line) and what follows it.
func cutLine(s string) (line, rest string, ok bool) {
	i := strings.IndexByte(s, '\r')
	if i < 0 || i+1 >= len(s) || s[i+1] != '\n' || strings.IndexByte(s[:i], '\n') >= 0 {
		return "", "", false
	}
	return s[:i], s[i+2:], true
}

// parseStartLine parses a request or status line as sipgo does, or
// returns nil.
func parseStartLine(line string) sip.Message {
	a, rest, ok := strings.Cut(line, " ")
	if !ok {
		return nil
	}
	b, c, ok := strings.Cut(rest, " ")
	if !ok {
		return nil
	}
	switch {
	case len(c) >= 3 && strings.IndexByte(c, ' ') < 0 && sip.UriIsSIP(c[:3]):
		var u sip.Uri
		if err := sip.ParseUri(b, &u); err != nil || u.Wildcard {
			return nil
		}
		req := sip.NewRequest(sip.RequestMethod(strings.ToUpper(a)), u)
		req.SipVersion = c
		return req
	case len(a) >= 3 && sip.UriIsSIP(a[:3]):
		code, err := strconv.ParseUint(b, 10, 16)
		if err != nil {
			return nil
		}
		res := sip.NewResponse(int(code), c)
		res.SipVersion = a
		return res
	}
	return nil
}

// rawServerKey computes, from the raw bytes of a request, the key
// transaction.ServerKey gives the parsed request, for the common case of a
// request other than ACK and CANCEL whose top Via carries an RFC 3261
// branch; it writes the key into buf. ok is false whenever it is not sure;
// the caller then parses the message in full. It lets a retransmission be
// matched to its transaction without a parse.
func rawServerKey(data, buf []byte) (key []byte, ok bool) {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, false
	}
	head := data[:end+2]
	i := bytes.IndexByte(head, ' ')
	if i <= 0 {
		return nil, false
	}
	method := head[:i]
	for _, c := range method {
		if c < 'A' || c > 'Z' {
			return nil, false
		}
	}
	if string(method) == "ACK" || string(method) == "CANCEL" {
		return nil, false
	}
	// The first Via header line; no folded line before it or after it.
	nl := bytes.Index(head, []byte("\r\n"))
	head = head[nl+2:]
	var via []byte
	for len(head) > 0 {
		j := bytes.Index(head, []byte("\r\n"))
		if j < 0 {
			return nil, false
		}
		line := head[:j]
		head = head[j+2:]
		if len(line) == 0 || line[0] == ' ' || line[0] == '\t' || bytes.IndexByte(line, '\r') >= 0 || bytes.IndexByte(line, '\n') >= 0 {
			return nil, false
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return nil, false
		}
		name := bytes.TrimSpace(line[:colon])
		if bytes.EqualFold(name, []byte("via")) || bytes.EqualFold(name, []byte("v")) {
			if len(head) > 0 && (head[0] == ' ' || head[0] == '\t') {
				return nil, false
			}
			via = bytes.TrimSpace(line[colon+1:])
			break
		}
	}
	// SIP/2.0/PROTO SP sent-by ;params [, more]
	if !bytes.HasPrefix(via, []byte("SIP/2.0/")) {
		return nil, false
	}
	via = via[len("SIP/2.0/"):]
	sp := bytes.IndexByte(via, ' ')
	if sp <= 0 || bytes.IndexByte(via[:sp], '\t') >= 0 || bytes.IndexByte(via[:sp], '/') >= 0 {
		return nil, false
	}
	via = via[sp+1:]
	if k := bytes.IndexByte(via, ','); k >= 0 {
		via = via[:k]
	}
	if bytes.ContainsAny(via, " \t\"[]") {
		return nil, false
	}
	semi := bytes.IndexByte(via, ';')
	if semi <= 0 {
		return nil, false
	}
	sentBy, params := via[:semi], via[semi+1:]
	host, port := sentBy, []byte("0")
	if c := bytes.IndexByte(sentBy, ':'); c >= 0 {
		host, port = sentBy[:c], sentBy[c+1:]
		if len(port) == 0 || len(port) > 5 {
			return nil, false
		}
		for _, d := range port {
			if d < '0' || d > '9' {
				return nil, false
			}
		}
		n, _ := strconv.Atoi(string(port))
		if n > 65535 || (port[0] == '0' && len(port) > 1) {
			return nil, false
		}
	}
	if len(host) == 0 {
		return nil, false
	}
	var branch []byte
	for len(params) > 0 {
		p := params
		if k := bytes.IndexByte(params, ';'); k >= 0 {
			p, params = params[:k], params[k+1:]
		} else {
			params = nil
		}
		v, found := bytes.CutPrefix(p, []byte("branch="))
		if (found && branch != nil) || string(p) == "branch" {
			return nil, false // two branches, or one without a value
		}
		if found {
			branch = v
		}
	}
	if !bytes.HasPrefix(branch, []byte(sip.RFC3261BranchMagicCookie)) {
		return nil, false
	}
	key = append(buf[:0], branch...)
	key = append(key, '|')
	for _, c := range host {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		key = append(key, c)
	}
	key = append(key, ':')
	key = append(key, port...)
	key = append(key, '|')
	key = append(key, method...)
	return key, true
}
