package edge

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
)

// errBadCredentials is returned by parseDigest for a header that is not a
// well-formed Digest credentials value.
var errBadCredentials = errors.New("edge: malformed digest credentials")

// maxCredentialsLen bounds what parseDigest reads.
const maxCredentialsLen = 4096

// parseDigest parses an Authorization or Proxy-Authorization value
// (RFC 3261 section 25.1: `Digest` then comma-separated auth-params, each
// a token or a quoted string with backslash escapes). Unknown parameters
// are skipped; a duplicate known parameter is an error, as is anything
// that does not scan.
func parseDigest(v string) (*registrarv1.DigestCredentials, error) {
	if len(v) > maxCredentialsLen {
		return nil, errBadCredentials
	}
	v = strings.TrimLeft(v, " \t")
	if len(v) < 6 || !strings.EqualFold(v[:6], "digest") || len(v) > 6 && v[6] != ' ' && v[6] != '\t' {
		return nil, errBadCredentials
	}
	s := v[6:]
	c := &registrarv1.DigestCredentials{}
	seen := map[string]bool{}
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			break
		}
		// name
		i := 0
		for i < len(s) && isTokenChar(s[i]) {
			i++
		}
		if i == 0 {
			return nil, errBadCredentials
		}
		name := strings.ToLower(s[:i])
		s = strings.TrimLeft(s[i:], " \t")
		if s == "" || s[0] != '=' {
			return nil, errBadCredentials
		}
		s = strings.TrimLeft(s[1:], " \t")
		var val string
		if s != "" && s[0] == '"' {
			var b strings.Builder
			j, closed := 1, false
			for j < len(s) {
				ch := s[j]
				if ch == '\\' && j+1 < len(s) {
					b.WriteByte(s[j+1])
					j += 2
					continue
				}
				if ch == '"' {
					closed = true
					j++
					break
				}
				b.WriteByte(ch)
				j++
			}
			if !closed {
				return nil, errBadCredentials
			}
			val, s = b.String(), s[j:]
		} else {
			j := 0
			for j < len(s) && isTokenChar(s[j]) {
				j++
			}
			if j == 0 {
				return nil, errBadCredentials
			}
			val, s = s[:j], s[j:]
		}
		if seen[name] {
			return nil, errBadCredentials
		}
		seen[name] = true
		switch name {
		case "username":
			c.Username = val
		case "realm":
			c.Realm = val
		case "nonce":
			c.Nonce = val
		case "uri":
			c.Uri = val
		case "response":
			c.Response = val
		case "algorithm":
			c.Algorithm = val
		case "cnonce":
			c.Cnonce = val
		case "opaque":
			c.Opaque = val
		case "qop":
			c.Qop = val
		case "nc":
			c.Nc = val
		}
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			break
		}
		if s[0] != ',' {
			return nil, errBadCredentials
		}
		s = s[1:]
	}
	if c.Username == "" || c.Nonce == "" || c.Response == "" {
		return nil, errBadCredentials
	}
	return c, nil
}

// isTokenChar reports a character of an RFC 3261 token.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// credentialsFor returns the Digest credentials of req's header name
// (Authorization or Proxy-Authorization), preferring those for realm
// (the domain the request claims); nil when there are none that parse.
func credentialsFor(req *sip.Request, name, realm string) *registrarv1.DigestCredentials {
	var first *registrarv1.DigestCredentials
	for _, h := range req.GetHeaders(name) {
		c, err := parseDigest(h.Value())
		if err != nil {
			continue
		}
		if strings.EqualFold(c.Realm, realm) {
			return c
		}
		if first == nil {
			first = c
		}
	}
	return first
}

// isTrusted reports whether a source address is in the trusted networks,
// whose requests need no authentication.
func (e *Edge) isTrusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range e.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// rejectHeaders turns the router's extra headers of a rejection into SIP
// headers, keeping only the names a rejection may carry and values
// without line breaks.
func rejectHeaders(hs []*routerv1.Header) []sip.Header {
	var out []sip.Header
	for _, h := range hs {
		name, v := h.GetName(), h.GetValue()
		if v == "" || strings.ContainsAny(name+v, "\r\n") {
			continue
		}
		switch strings.ToLower(name) {
		case "proxy-authenticate", "www-authenticate", "warning", "unsupported", "allow", "min-expires", "reason":
			out = append(out, sip.NewHeader(name, v))
		}
	}
	return out
}
