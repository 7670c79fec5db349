// Package sipuri parses the parts of SIP URIs (RFC 3261 section 19.1) that
// routing decisions need.
package sipuri

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every parse error.
var ErrInvalid = errors.New("sipuri: invalid uri")

// URI is a parsed sip or sips URI; header parts ("?...") are dropped.
type URI struct {
	// Scheme is "sip" or "sips", lower-case.
	Scheme string
	// User is the user part, "" when absent.
	User string
	// Host is lower-case; an IPv6 host has no brackets.
	Host string
	// Port is 0 when absent.
	Port int
	// Transport is the lower-case transport parameter, "" when absent.
	Transport string
	// GR is true when the URI has a gr parameter: it is a GRUU (RFC 5627).
	GR bool
}

// Parse parses a sip or sips URI without display name or angle brackets.
func Parse(s string) (URI, error) {
	var u URI
	scheme, rest, ok := strings.Cut(strings.TrimSpace(s), ":")
	if !ok {
		return u, fmt.Errorf("parsing %q: no scheme: %w", s, ErrInvalid)
	}
	u.Scheme = strings.ToLower(scheme)
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return u, fmt.Errorf("parsing %q: scheme %q is not sip or sips: %w", s, scheme, ErrInvalid)
	}
	rest, _, _ = strings.Cut(rest, "?")
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		u.User, _, _ = strings.Cut(rest[:at], ":")
		rest = rest[at+1:]
		if u.User == "" {
			return u, fmt.Errorf("parsing %q: empty user: %w", s, ErrInvalid)
		}
	}
	hostport, params, _ := strings.Cut(rest, ";")
	host, portStr := hostport, ""
	if strings.HasPrefix(hostport, "[") {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return u, fmt.Errorf("parsing %q: unterminated IPv6 host: %w", s, ErrInvalid)
		}
		host = hostport[1:end]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return u, fmt.Errorf("parsing %q: bad IPv6 host: %w", s, ErrInvalid)
		}
		if tail := hostport[end+1:]; tail != "" {
			if tail[0] != ':' {
				return u, fmt.Errorf("parsing %q: junk after IPv6 host: %w", s, ErrInvalid)
			}
			portStr = tail[1:]
		}
	} else if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
		host, portStr = hostport[:i], hostport[i+1:]
	}
	if host == "" || !strings.HasPrefix(hostport, "[") && strings.IndexFunc(host, notHostChar) >= 0 {
		return u, fmt.Errorf("parsing %q: bad host: %w", s, ErrInvalid)
	}
	u.Host = strings.ToLower(host)
	if portStr != "" {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 {
			return u, fmt.Errorf("parsing %q: bad port %q: %w", s, portStr, ErrInvalid)
		}
		u.Port = p
	}
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(p, "=")
		switch name = strings.TrimSpace(name); {
		case strings.EqualFold(name, "transport"):
			u.Transport = strings.ToLower(strings.TrimSpace(value))
		case strings.EqualFold(name, "gr"):
			u.GR = true
		}
	}
	return u, nil
}

// notHostChar reports a character that cannot be in a host name or IPv4
// address.
func notHostChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_')
}

// HostPort formats the host, bracketed if IPv6, and the port if set.
func (u URI) HostPort() string {
	h := u.Host
	if strings.IndexByte(h, ':') >= 0 {
		h = "[" + h + "]"
	}
	if u.Port == 0 {
		return h
	}
	return h + ":" + strconv.Itoa(u.Port)
}

// AOR is the address-of-record the registrar stores for the URI:
// "sip:user@host", without port or parameters.
func (u URI) AOR() string {
	return "sip:" + u.User + "@" + URI{Host: u.Host}.HostPort()
}
