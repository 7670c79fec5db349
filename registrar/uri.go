package registrar

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// errInvalidURI is wrapped by the URI parser's errors.
var errInvalidURI = errors.New("registrar: invalid uri")

// sipURI is the part of a SIP URI (RFC 3261 section 19.1) that the
// registrar compares; header parts ("?...") are dropped.
type sipURI struct {
	scheme    string // "sip" or "sips", lower-case
	user      string
	host      string // lower-case, IPv6 without brackets
	port      int    // 0 when absent
	transport string // lower-case transport parameter, "" when absent
	hasGR     bool   // a gr parameter (RFC 5627 GRUU) is present
	gr        string // its value, unescaped; "" for a bare gr (temporary GRUU)
}

// parseURI parses a sip or sips URI, leniently: unknown parameters are
// skipped, a display name or angle brackets are not accepted.
func parseURI(s string) (sipURI, error) {
	var u sipURI
	scheme, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return u, fmt.Errorf("parsing %q: no scheme: %w", s, errInvalidURI)
	}
	u.scheme = strings.ToLower(scheme)
	if u.scheme != "sip" && u.scheme != "sips" {
		return u, fmt.Errorf("parsing %q: scheme %q is not sip or sips: %w", s, scheme, errInvalidURI)
	}
	rest, _, _ = strings.Cut(rest, "?")
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		u.user, _, _ = strings.Cut(rest[:at], ":") // drop a password
		rest = rest[at+1:]
		if u.user == "" {
			return u, fmt.Errorf("parsing %q: empty user: %w", s, errInvalidURI)
		}
	}
	hostport, params, _ := strings.Cut(rest, ";")
	host, port, err := splitHostPort(hostport)
	if err != nil {
		return u, fmt.Errorf("parsing %q: %w", s, err)
	}
	u.host, u.port = strings.ToLower(host), port
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		switch name = strings.TrimSpace(name); {
		case strings.EqualFold(name, "transport"):
			u.transport = strings.ToLower(strings.TrimSpace(value))
		case strings.EqualFold(name, "gr"):
			u.hasGR = true
			if v, err := url.PathUnescape(strings.TrimSpace(value)); err == nil {
				u.gr = v
			} else {
				u.gr = strings.TrimSpace(value)
			}
		}
	}
	return u, nil
}

// splitHostPort splits "host", "host:port", "[v6]" or "[v6]:port".
func splitHostPort(hp string) (string, int, error) {
	host, portStr := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("unterminated IPv6 host %q: %w", hp, errInvalidURI)
		}
		host = hp[1:end]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return "", 0, fmt.Errorf("bad IPv6 host %q: %w", hp, errInvalidURI)
		}
		if rest := hp[end+1:]; rest != "" {
			if rest[0] != ':' {
				return "", 0, fmt.Errorf("junk after IPv6 host %q: %w", hp, errInvalidURI)
			}
			portStr = rest[1:]
		}
	} else if i := strings.LastIndexByte(hp, ':'); i >= 0 {
		host, portStr = hp[:i], hp[i+1:]
	}
	if host == "" {
		return "", 0, fmt.Errorf("empty host: %w", errInvalidURI)
	}
	if !strings.HasPrefix(hp, "[") && strings.IndexFunc(host, notHostChar) >= 0 {
		return "", 0, fmt.Errorf("bad host %q: %w", host, errInvalidURI)
	}
	if portStr == "" {
		return host, 0, nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q: %w", portStr, errInvalidURI)
	}
	return host, port, nil
}

// notHostChar reports a character that cannot be in a host name or IPv4
// address.
func notHostChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
}

// hostPort formats host and port, bracketing IPv6 hosts.
func hostPort(host string, port int) string {
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(port)
}

// key is the form under which two contacts are the same binding: scheme,
// user, host, port and transport, with scheme, user, host and transport
// lower-cased. It is a simplification of RFC 3261 section 19.1.4.
func (u sipURI) key() string {
	return u.scheme + ":" + strings.ToLower(u.user) + "@" + hostPort(u.host, u.port) + ";transport=" + u.transport
}

// NormalizeAOR returns the address-of-record of a To URI as the registrar
// stores it: "sip:user@host", with the host lower-cased and the scheme,
// port, parameters and headers dropped. It needs a user part.
func NormalizeAOR(s string) (string, error) {
	u, err := parseURI(s)
	if err != nil {
		return "", err
	}
	if u.user == "" {
		return "", fmt.Errorf("parsing aor %q: no user part: %w", s, errInvalidURI)
	}
	return "sip:" + u.user + "@" + hostPort(u.host, 0), nil
}

// cgnat is the shared address space of RFC 6598, used behind carrier NATs.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// receivedFor returns the "sip:ip:port;transport=x" a request for the
// contact must go to when the contact's host is a private IP literal
// (RFC 1918, RFC 6598, IPv6 ULA) that differs from the flow's source, that
// is when the contact sits behind a NAT; otherwise "".
func receivedFor(contact sipURI, flow *registrarv1.Flow) string {
	if flow == nil || flow.GetSource() == "" {
		return ""
	}
	host, err := netip.ParseAddr(contact.host)
	if err != nil || !(host.IsPrivate() || cgnat.Contains(host.Unmap())) {
		return ""
	}
	src, err := netip.ParseAddrPort(flow.GetSource())
	if err != nil || src.Addr().Unmap() == host.Unmap() {
		return ""
	}
	r := "sip:" + src.String()
	if t := transportName(flow.GetTransport()); t != "" {
		r += ";transport=" + t
	}
	return r
}

// transportName is the SIP transport parameter value of t, "" if unknown.
func transportName(t registrarv1.Transport) string {
	switch t {
	case registrarv1.Transport_TRANSPORT_UDP:
		return "udp"
	case registrarv1.Transport_TRANSPORT_TCP:
		return "tcp"
	case registrarv1.Transport_TRANSPORT_TLS:
		return "tls"
	case registrarv1.Transport_TRANSPORT_WS:
		return "ws"
	case registrarv1.Transport_TRANSPORT_WSS:
		return "wss"
	}
	return ""
}
