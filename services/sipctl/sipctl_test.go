package sipctl

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
	"github.com/sipd/sipd/registrar"
	"github.com/sipd/sipd/router"
	"github.com/sipd/sipd/services/config"
	"github.com/sipd/sipd/services/grpcx"
)

// stack is a registrar and a router, in-process on random ports.
type stack struct {
	registrar string
	router    string
	// config is the router's configuration file, re-read by its Reload.
	config string
}

// routerYAML is the router's configuration file in the stack.
const routerYAML = `router:
  domains: [localhost, 127.0.0.1, sipd.test]
  static_routes:
    - {domain: carrier.example.net, destination: "sip:192.0.2.10:5060;transport=tcp"}
`

func startStack(t *testing.T) stack {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = f(ctx) }()
	}

	reg, err := registrar.New(registrar.Config{}, registrar.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	regSrv := grpcx.NewServer("127.0.0.1:0", log)
	registrarv1.RegisterRegistrarServiceServer(regSrv, reg)
	run(reg.Run)
	run(regSrv.Run)
	<-regSrv.Ready()

	conn, err := grpcx.Dial(regSrv.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cfgPath := filepath.Join(t.TempDir(), "router.yaml")
	if err := os.WriteFile(cfgPath, []byte(routerYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	reload := func() ([]router.StaticRoute, error) {
		c, err := config.Load(cfgPath)
		if err != nil {
			return nil, err
		}
		if err := c.Validate(config.RoleRouter); err != nil {
			return nil, err
		}
		return c.Router.StaticRoutes, nil
	}
	rt, err := router.New(cfg.Router,
		router.Deps{Locator: registrarv1.NewRegistrarServiceClient(conn), Logger: log, Reload: reload})
	if err != nil {
		t.Fatal(err)
	}
	rtSrv := grpcx.NewServer("127.0.0.1:0", log)
	routerv1.RegisterRouterServiceServer(rtSrv, rt)
	run(rt.Run)
	run(rtSrv.Run)
	<-rtSrv.Ready()
	return stack{registrar: regSrv.Addr().String(), router: rtSrv.Addr().String(), config: cfgPath}
}

// sipctl runs one command against s and returns its exit code and output.
func (s stack) sipctl(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{EnvRegistrar: s.registrar, EnvRouter: s.router}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := Run(ctx, args, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

func (s stack) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := s.sipctl(t, args...)
	if code != 0 {
		t.Fatalf("sipctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestRegistrationsAndRouting(t *testing.T) {
	s := startStack(t)
	const aor, contact = "sip:bob@sipd.test", "sip:bob@192.0.2.7:5070"

	out := s.mustRun(t, "reg", "list")
	if !strings.Contains(out, "0 AORs, 0 contacts") {
		t.Fatalf("empty reg list:\n%s", out)
	}
	s.mustRun(t, "reg", "add", "-expires", "10m", "bob@sipd.test", contact)

	out = s.mustRun(t, "reg", "list")
	for _, want := range []string{"AOR", "CONTACT", aor, contact, "1 AORs, 1 contacts"} {
		if !strings.Contains(out, want) {
			t.Errorf("reg list does not show %q:\n%s", want, out)
		}
	}
	var list struct {
		Records []struct {
			Aor      string `json:"aor"`
			Bindings []struct {
				URI string `json:"uri"`
			} `json:"bindings"`
		} `json:"records"`
	}
	out = s.mustRun(t, "-o", "json", "reg", "list")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("reg list -o json: %v\n%s", err, out)
	}
	if len(list.Records) != 1 || list.Records[0].Aor != aor || list.Records[0].Bindings[0].URI != contact {
		t.Fatalf("reg list -o json = %+v", list)
	}
	if out := s.mustRun(t, "reg", "list", "-aor", "alice"); !strings.Contains(out, "0 AORs") {
		t.Errorf("reg list -aor alice shows bob:\n%s", out)
	}

	out = s.mustRun(t, "reg", "show", aor)
	if !strings.Contains(out, "found") || !strings.Contains(out, contact) {
		t.Errorf("reg show:\n%s", out)
	}

	out = s.mustRun(t, "route", "test", "sip:bob@sipd.test")
	if !strings.HasPrefix(out, "forward") || !strings.Contains(out, contact) {
		t.Errorf("route test to a registered user:\n%s", out)
	}
	out = s.mustRun(t, "route", "test", "-o", "json", "sip:nobody@sipd.test")
	if !strings.Contains(out, `"code": 404`) {
		t.Errorf("route test -o json to an unknown user:\n%s", out)
	}

	out = s.mustRun(t, "reg", "rm", aor, contact)
	if !strings.Contains(out, "removed 1 contact(s)") {
		t.Errorf("reg rm:\n%s", out)
	}
	out = s.mustRun(t, "route", "test", "sip:bob@sipd.test")
	if !strings.HasPrefix(out, "reject 480") {
		t.Errorf("route test after reg rm = %q, want reject 480", out)
	}
	out = s.mustRun(t, "reg", "show", aor)
	if !strings.Contains(out, "no contacts") {
		t.Errorf("reg show after reg rm:\n%s", out)
	}
}

func TestRoutes(t *testing.T) {
	s := startStack(t)
	const carrier, dest = "carrier.example.net", "sip:192.0.2.10:5060;transport=tcp"

	out := s.mustRun(t, "routes")
	for _, want := range []string{"DOMAIN", "STATE", "ATTEMPTS", carrier, dest, "active", "1 route(s)"} {
		if !strings.Contains(out, want) {
			t.Errorf("routes does not show %q:\n%s", want, out)
		}
	}
	if out := s.mustRun(t, "route", "test", "sip:+15551234@"+carrier); !strings.Contains(out, dest) {
		t.Fatalf("route test via the static route:\n%s", out)
	}

	out = s.mustRun(t, "route-state", carrier, "disabled")
	if !strings.Contains(out, "is disabled") {
		t.Errorf("route-state disabled:\n%s", out)
	}
	if out := s.mustRun(t, "route", "test", "sip:+15551234@"+carrier); !strings.HasPrefix(out, "reject 404") {
		t.Errorf("route test via a disabled route = %q, want reject 404", out)
	}
	var list struct {
		Routes []struct {
			Domain   string `json:"domain"`
			State    string `json:"state"`
			Attempts string `json:"attempts"` // uint64 is a JSON string
		} `json:"routes"`
	}
	out = s.mustRun(t, "routes", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("routes -o json: %v\n%s", err, out)
	}
	if len(list.Routes) != 1 || list.Routes[0].Domain != carrier || list.Routes[0].State != "ROUTE_STATE_DISABLED" || list.Routes[0].Attempts != "1" {
		t.Fatalf("routes -o json = %+v", list)
	}

	// Reload: the carrier route stays disabled, the new one comes active.
	yaml := routerYAML + `    - {domain: pbx.example.org, destination: "sip:192.0.2.30"}` + "\n"
	if err := os.WriteFile(s.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := s.mustRun(t, "reload"); !strings.Contains(out, "reloaded 2 route(s)") {
		t.Errorf("reload:\n%s", out)
	}
	out = s.mustRun(t, "routes")
	if !strings.Contains(out, "pbx.example.org") || !strings.Contains(out, "disabled") || !strings.Contains(out, "2 route(s)") {
		t.Errorf("routes after reload:\n%s", out)
	}

	// A bad file: reload fails, the old table stays.
	if err := os.WriteFile(s.config, []byte("router:\n  static_routes:\n    - {domain: x.example, destination: nonsense}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := s.sipctl(t, "reload")
	if code != 1 || !strings.Contains(errOut, "FailedPrecondition") || !strings.Contains(errOut, "nonsense") {
		t.Errorf("reload of a bad file: exit %d, %q", code, errOut)
	}
	if out := s.mustRun(t, "routes"); !strings.Contains(out, "2 route(s)") {
		t.Errorf("routes after a failed reload:\n%s", out)
	}

	s.mustRun(t, "route-state", carrier, "active")
	if out := s.mustRun(t, "route", "test", "sip:+15551234@"+carrier); !strings.Contains(out, dest) {
		t.Errorf("route test after enabling:\n%s", out)
	}
	if code, _, errOut := s.sipctl(t, "route-state", "nowhere.example", "disabled"); code != 1 || !strings.Contains(errOut, "NotFound") {
		t.Errorf("route-state of an unknown domain: exit %d, %q", code, errOut)
	}
}

func TestFlushNeedsYes(t *testing.T) {
	s := startStack(t)
	s.mustRun(t, "reg", "add", "alice@sipd.test", "sip:alice@192.0.2.8")
	if code, _, errOut := s.sipctl(t, "reg", "flush"); code != 2 || !strings.Contains(errOut, "-yes") {
		t.Fatalf("reg flush without -yes: exit %d, %q", code, errOut)
	}
	if out := s.mustRun(t, "reg", "flush", "-yes"); !strings.Contains(out, "removed 1 AOR(s)") {
		t.Fatalf("reg flush -yes:\n%s", out)
	}
	if out := s.mustRun(t, "reg", "list"); !strings.Contains(out, "0 AORs") {
		t.Fatalf("reg list after flush:\n%s", out)
	}
}

func TestHealth(t *testing.T) {
	s := startStack(t)
	out := s.mustRun(t, "health")
	if strings.Count(out, " ok ") != 2 {
		t.Errorf("health of registrar and router:\n%s", out)
	}

	sip := fakeSIP(t)
	hz := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	defer hz.Close()
	out = s.mustRun(t, "-o", "json", "health", "-grpc", s.registrar, "-http", hz.URL, "-sip", "udp:"+sip)
	var checks []Check
	if err := json.Unmarshal([]byte(out), &checks); err != nil || len(checks) != 3 {
		t.Fatalf("health -o json: %v\n%s", err, out)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("check %+v failed", c)
		}
	}

	dead := freeUDP(t)
	code, out, _ := s.sipctl(t, "-timeout", "1200ms", "health", "-grpc", s.router, "-sip", "udp:"+dead)
	if code != 1 || !strings.Contains(out, "FAIL") {
		t.Errorf("health with a dead SIP listener: exit %d\n%s", code, out)
	}
	if code, _, _ := s.sipctl(t, "-timeout", "1s", "health", "-q", "-grpc", freeTCP(t)); code != 1 {
		t.Errorf("health of a closed gRPC port: exit %d, want 1", code)
	}
}

func TestStats(t *testing.T) {
	const page = `# HELP sipd_edge_requests_total SIP requests received, by method.
# TYPE sipd_edge_requests_total counter
sipd_edge_requests_total{method="INVITE"} 12
sipd_edge_requests_total{method="REGISTER"} 3
# TYPE sipd_edge_grpc_duration_seconds histogram
sipd_edge_grpc_duration_seconds_bucket{service="router",le="0.005"} 7
sipd_edge_grpc_duration_seconds_sum{service="router"} 0.02
sipd_edge_grpc_duration_seconds_count{service="router"} 12
go_goroutines 42
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(page)) }))
	defer srv.Close()
	s := stack{}
	out := s.mustRun(t, "stats", "-metrics", srv.URL)
	for _, want := range []string{`method="INVITE"`, "12", "sipd_edge_grpc_duration_seconds_count"} {
		if !strings.Contains(out, want) {
			t.Errorf("stats does not show %q:\n%s", want, out)
		}
	}
	for _, unwanted := range []string{"_bucket", "go_goroutines"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("stats shows %q:\n%s", unwanted, out)
		}
	}
	var stats []Stat
	out = s.mustRun(t, "stats", "-o", "json", "-metrics", strings.TrimPrefix(srv.URL, "http://"))
	if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats) != 4 {
		t.Fatalf("stats -o json: %v, %d stats\n%s", err, len(stats), out)
	}
}

func TestUsage(t *testing.T) {
	s := stack{registrar: "127.0.0.1:1", router: "127.0.0.1:1"}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no command", nil, 2, "commands:"},
		{"help", []string{"help"}, 0, "reg list"},
		{"unknown", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"bad output", []string{"-o", "yaml", "reg", "list"}, 2, "must be table or json"},
		{"show without aor", []string{"reg", "show"}, 2, "usage: sipctl reg show AOR"},
		{"routes, router down", []string{"-timeout", "500ms", "routes"}, 1, "sipctl routes: "},
		{"route-state without state", []string{"route-state", "carrier.example.net"}, 2, "usage: sipctl route-state DOMAIN active|disabled"},
		{"route-state bad state", []string{"route-state", "carrier.example.net", "off"}, 2, "must be active or disabled"},
		{"reload with arguments", []string{"reload", "now"}, 2, "reload takes no arguments"},
		{"registrar down", []string{"-timeout", "500ms", "reg", "list"}, 1, "sipctl reg list: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := s.sipctl(t, tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d (want %d), output does not contain %q:\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

// fakeSIP answers every datagram with 200 OK, until the test ends.
func fakeSIP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			_, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo([]byte("SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), addr)
		}
	}()
	return pc.LocalAddr().String()
}

func freeUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().String()
}

func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
