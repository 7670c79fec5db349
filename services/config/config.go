// Package config loads and validates sipd's YAML configuration. One file
// format serves every binary: the all-in-one sipd uses every section, each
// separate service uses its own section plus log, telemetry, nats and grpc.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/sipd/sipd/edge"
	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/router"
)

// DefaultDomains are always served locally, whatever the file adds.
var DefaultDomains = []string{"localhost", "127.0.0.1"}

// Config is the whole configuration file.
type Config struct {
	// Log sets the log level and format.
	Log Log `yaml:"log"`
	// Telemetry sets the metrics endpoint and trace export.
	Telemetry Telemetry `yaml:"telemetry"`
	// NATS sets the embedded server (sipd) or the server to join.
	NATS NATS `yaml:"nats"`
	// GRPC sets where services listen and where they reach each other.
	GRPC GRPC `yaml:"grpc"`
	// Domains are served locally in addition to localhost and 127.0.0.1:
	// REGISTER is accepted for them and calls to them are looked up.
	Domains []string `yaml:"domains"`
	// Edge is the SIP edge.
	Edge edge.Config `yaml:"edge"`
	// Registrar is the location service.
	Registrar registrar.Config `yaml:"registrar"`
	// Router is the routing service.
	Router router.Config `yaml:"router"`
}

// Log configures log/slog output on standard error.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Telemetry configures metrics and traces.
type Telemetry struct {
	// MetricsListen is the host:port serving Prometheus /metrics and
	// /healthz; empty disables the HTTP server.
	MetricsListen string `yaml:"metrics_listen"`
	// OTLPEndpoint is an OTLP/gRPC collector (for example Jaeger's
	// 127.0.0.1:4317); empty disables trace export.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of SIP transactions traced, 0 to 1.
	// Default 1 when OTLPEndpoint is set.
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName overrides the service.name resource attribute.
	ServiceName string `yaml:"service_name"`
}

// NATS configures messaging between services and sites.
type NATS struct {
	// Listen is where the all-in-one sipd runs its embedded NATS server
	// (host:port). Empty disables it. Ignored by the separate services.
	Listen string `yaml:"listen"`
	// StoreDir enables JetStream in the embedded server, storing there.
	StoreDir string `yaml:"store_dir"`
	// URL is the NATS server the separate services connect to
	// (nats://host:4222); empty runs them without NATS.
	URL string `yaml:"url"`
}

// GRPC configures the service-to-service API.
type GRPC struct {
	// RegistrarListen is where the registrar serves gRPC.
	RegistrarListen string `yaml:"registrar_listen"`
	// RouterListen is where the router serves gRPC.
	RouterListen string `yaml:"router_listen"`
	// RegistrarAddress is where the edge and the router reach the registrar.
	RegistrarAddress string `yaml:"registrar_address"`
	// RouterAddress is where the edge reaches the router.
	RouterAddress string `yaml:"router_address"`
}

// Role names the process a configuration is validated for.
type Role string

// Roles: the all-in-one process and each separate service.
const (
	RoleSipd      Role = "sipd"
	RoleEdge      Role = "edge"
	RoleRegistrar Role = "registrar"
	RoleRouter    Role = "router"
)

// Load reads and decodes a configuration file, refusing unknown keys. An
// empty path yields the defaults. Defaults are applied; call Validate next.
func Load(path string) (*Config, error) {
	var data []byte
	if path != "" {
		var err error
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("reading config: %w", err)
		}
	}
	return Parse(data)
}

// Parse decodes configuration from YAML text, refusing unknown keys, and
// applies the defaults.
func Parse(data []byte) (*Config, error) {
	c := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parsing config: %w", err)
	}
	c.SetDefaults()
	return c, nil
}

// SetDefaults fills every unset value.
func (c *Config) SetDefaults() {
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.Telemetry.SampleRatio == nil {
		one := 1.0
		c.Telemetry.SampleRatio = &one
	}
	if c.GRPC.RegistrarListen == "" {
		c.GRPC.RegistrarListen = "127.0.0.1:7001"
	}
	if c.GRPC.RouterListen == "" {
		c.GRPC.RouterListen = "127.0.0.1:7002"
	}
	if c.GRPC.RegistrarAddress == "" {
		c.GRPC.RegistrarAddress = c.GRPC.RegistrarListen
	}
	if c.GRPC.RouterAddress == "" {
		c.GRPC.RouterAddress = c.GRPC.RouterListen
	}
	domains := mergeDomains(DefaultDomains, c.Domains, c.Edge.Domains, c.Router.Domains)
	c.Edge.Domains = domains
	c.Router.Domains = domains
	c.Edge.SetDefaults()
	c.Registrar.SetDefaults()
	c.Router.SetDefaults()
}

// OverrideListen replaces the edge's SIP listeners with a comma-separated
// list such as "udp:127.0.0.1:5080,tcp:127.0.0.1:5080".
func (c *Config) OverrideListen(list string) {
	var ls []string
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			ls = append(ls, s)
		}
	}
	c.Edge.Listen = ls
	c.Edge.Transport.Listeners = nil
	c.Edge.SetDefaults()
}

// Validate reports every problem of the sections role uses, each prefixed
// with its section.
func (c *Config) Validate(role Role) error {
	var errs []error
	add := func(section string, err error) {
		for _, e := range flatten(err) {
			errs = append(errs, fmt.Errorf("%s: %w", section, e))
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log", fmt.Errorf("level %q must be debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		add("log", fmt.Errorf("format %q must be text or json", c.Log.Format))
	}
	if r := *c.Telemetry.SampleRatio; r < 0 || r > 1 {
		add("telemetry", fmt.Errorf("sample_ratio (%g) must be between 0 and 1", r))
	}
	checkHostPort := func(section, key, v string, required bool) {
		if v == "" {
			if required {
				add(section, fmt.Errorf("%s must be set", key))
			}
			return
		}
		if _, _, err := net.SplitHostPort(v); err != nil {
			add(section, fmt.Errorf("%s %q is not host:port: %w", key, v, err))
		}
	}
	checkHostPort("telemetry", "metrics_listen", c.Telemetry.MetricsListen, false)
	checkHostPort("telemetry", "otlp_endpoint", c.Telemetry.OTLPEndpoint, false)
	if role == RoleSipd {
		checkHostPort("nats", "listen", c.NATS.Listen, false)
	}
	if c.NATS.URL != "" && !strings.HasPrefix(c.NATS.URL, "nats://") && !strings.HasPrefix(c.NATS.URL, "tls://") {
		add("nats", fmt.Errorf("url %q must start with nats:// or tls://", c.NATS.URL))
	}
	for _, d := range c.Domains {
		if d == "" || strings.ContainsAny(d, " :;@<>") {
			add("domains", fmt.Errorf("domain %q is not a host name or address", d))
		}
	}
	if role == RoleSipd || role == RoleEdge {
		add("edge", c.Edge.Validate())
		checkHostPort("grpc", "registrar_address", c.GRPC.RegistrarAddress, true)
		checkHostPort("grpc", "router_address", c.GRPC.RouterAddress, true)
	}
	if role == RoleSipd || role == RoleRegistrar {
		add("registrar", c.Registrar.Validate())
		checkHostPort("grpc", "registrar_listen", c.GRPC.RegistrarListen, true)
	}
	if role == RoleSipd || role == RoleRouter {
		add("router", c.Router.Validate())
		checkHostPort("grpc", "router_listen", c.GRPC.RouterListen, true)
		checkHostPort("grpc", "registrar_address", c.GRPC.RegistrarAddress, true)
	}
	return errors.Join(dedupe(errs)...)
}

// flatten returns the errors joined in err, one level deep per join.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func dedupe(errs []error) []error {
	seen := map[string]bool{}
	var out []error
	for _, e := range errs {
		if !seen[e.Error()] {
			seen[e.Error()] = true
			out = append(out, e)
		}
	}
	return out
}

func mergeDomains(lists ...[]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range lists {
		for _, d := range l {
			d = strings.ToLower(strings.TrimSpace(d))
			if d != "" && !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
}
