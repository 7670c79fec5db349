package config

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestParseRefusesUnknownKeys(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"top level", "bogus: 1\n", "bogus"},
		{"nested", "edge:\n  listn: [udp:127.0.0.1:5060]\n", "listn"},
		{"registrar", "registrar:\n  max_expire: 1h\n", "max_expire"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse() error = %v, want it to name %q", err, tt.want)
			}
		})
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c, err := Parse([]byte(`
log: {level: loud, format: xml}
telemetry: {sample_ratio: 2, metrics_listen: "nope"}
registrar: {min_expires: 2h, max_expires: 1h}
edge: {listen: ["sctp:127.0.0.1:5060"]}
router: {static_routes: [{domain: example.net, destination: "not a uri"}]}
`))
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	err = c.Validate(RoleSipd)
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	msg := err.Error()
	for _, want := range []string{"log: level", "log: format", "sample_ratio", "metrics_listen", "registrar:", "edge:", "router:", "sctp"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Validate() error lacks %q:\n%s", want, msg)
		}
	}
	if n := strings.Count(msg, "\n") + 1; n < 8 {
		t.Errorf("Validate() reported %d problems, want at least 8:\n%s", n, msg)
	}
}

func TestDefaultsServeLocalDomains(t *testing.T) {
	c, err := Parse([]byte("domains: [Example.NET]\n"))
	if err != nil {
		t.Fatalf("Parse() error = %v", err)
	}
	if err := c.Validate(RoleSipd); err != nil {
		t.Fatalf("Validate() error = %v", err)
	}
	want := []string{"localhost", "127.0.0.1", "example.net"}
	if strings.Join(c.Edge.Domains, ",") != strings.Join(want, ",") || strings.Join(c.Router.Domains, ",") != strings.Join(want, ",") {
		t.Fatalf("domains: edge %v router %v, want %v", c.Edge.Domains, c.Router.Domains, want)
	}
}

func TestShippedConfigsAreValid(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "deploy", "config")
	roles := map[string]Role{"sipd.yaml": RoleSipd, "edge.yaml": RoleEdge, "registrar.yaml": RoleRegistrar, "router.yaml": RoleRouter}
	for name, role := range roles {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("shipped config missing: %v", err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load(%s) error = %v", name, err)
			}
			if err := c.Validate(role); err != nil {
				t.Fatalf("Validate(%s) error = %v", name, err)
			}
		})
	}
}

func TestOverrideListen(t *testing.T) {
	c, _ := Parse(nil)
	c.OverrideListen("udp:127.0.0.1:5080, tcp:127.0.0.1:5080")
	if got := strings.Join(c.Edge.Listen, ","); got != "udp:127.0.0.1:5080,tcp:127.0.0.1:5080" {
		t.Fatalf("Listen = %q", got)
	}
}

func TestOverrideListenReplacesTransportListeners(t *testing.T) {
	c, _ := Parse([]byte("edge: {listen: [udp:127.0.0.1:5060]}\n"))
	c.OverrideListen("tcp:127.0.0.1:5090")
	if len(c.Edge.Transport.Listeners) != 1 || c.Edge.Transport.Listeners[0].String() != "tcp:127.0.0.1:5090" {
		t.Fatalf("transport listeners = %v, want [tcp:127.0.0.1:5090]", c.Edge.Transport.Listeners)
	}
}
