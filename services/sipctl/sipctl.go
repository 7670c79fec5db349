// Package sipctl is sipd's operator command line: it lists and changes
// registrations, asks the router for routing decisions, summarises
// metrics and checks health, over the services' gRPC and HTTP APIs. It is
// sipd's counterpart of opensips-cli and kamcmd. Output is a table for
// people or JSON (-o json) for scripts.
package sipctl

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	routerv1 "github.com/sipd/sipd/proto/gen/sipd/router/v1"
)

// Defaults of the global flags.
const (
	DefaultRegistrar = "127.0.0.1:7001"
	DefaultRouter    = "127.0.0.1:7002"
	DefaultMetrics   = "http://127.0.0.1:9060/metrics"
	DefaultTimeout   = 5 * time.Second
)

// Environment variables that replace the defaults of the global flags.
const (
	EnvRegistrar = "SIPD_REGISTRAR"
	EnvRouter    = "SIPD_ROUTER"
	EnvMetrics   = "SIPD_METRICS"
)

// errUsage marks a command line sipctl cannot run; the exit code is 2.
var errUsage = errors.New("sipctl: usage")

// Options are the global flags, shared by every command.
type Options struct {
	Registrar string
	Router    string
	Output    string
	Timeout   time.Duration
}

// cli is one invocation: its options, output streams and lazily dialled
// connections.
type cli struct {
	opts   Options
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string

	conns []*grpc.ClientConn
}

// command is one sipctl command.
type command struct {
	name    string
	args    string
	summary string
	run     func(ctx context.Context, c *cli, args []string) error
}

func commands() []command {
	return []command{
		{"reg list", "[-aor SUBSTRING]", "list registrations (AORs and their contacts)", runRegList},
		{"reg show", "AOR", "show the live contacts of one AOR (the registrar's lookup)", runRegShow},
		{"reg rm", "AOR [CONTACT]", "remove one contact of an AOR, or all of them", runRegRemove},
		{"reg add", "[-expires D] [-q Q] AOR CONTACT", "add or refresh a contact on the operator's behalf", runRegAdd},
		{"reg flush", "-yes", "remove every binding of every AOR", runRegFlush},
		{"domains", "", "list the registrar's served domains", runDomains},
		{"users", "DOMAIN", "list a domain's subscribers", runUsers},
		{"route test", "[-method M] [-from URI] [-to URI] [-source IP:PORT] REQUEST-URI", "ask the router what it would do with a request", runRouteTest},
		{"routes", "", "list the router's static routes, their states and attempts", runRoutes},
		{"route-state", "DOMAIN active|disabled", "enable or disable the static route of a domain", runRouteState},
		{"reload", "", "make the router re-read its static routes from its configuration file", runReload},
		{"stats", "[-metrics URL,...]", "summarise the sipd metrics of one or more services", runStats},
		{"health", "[-grpc ADDR] [-service NAME] [-http URL] [-sip udp:HOST:PORT]", "check that services answer; exit 1 when one does not", runHealth},
	}
}

// Run runs sipctl with args (without the program name) and returns the
// exit code: 0 on success, 1 when the command failed, 2 on a usage error.
// getenv supplies the environment (os.Getenv in the command).
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	defer c.close()
	fs := flag.NewFlagSet("sipctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c.globalFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c.usage()
			return 0
		}
		fmt.Fprintf(stderr, "sipctl: %v\n", err)
		c.usage()
		return 2
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] == "help" {
		c.usage()
		if len(rest) == 0 {
			return 2
		}
		return 0
	}
	cmd, cmdArgs, ok := find(rest)
	if !ok {
		fmt.Fprintf(stderr, "sipctl: unknown command %q\n", strings.Join(rest, " "))
		c.usage()
		return 2
	}
	err := cmd.run(ctx, c, cmdArgs)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stderr, "usage: sipctl %s %s\n  %s\n", cmd.name, cmd.args, cmd.summary)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "%v\n", err)
		fmt.Fprintf(stderr, "usage: sipctl %s %s\n", cmd.name, cmd.args)
		return 2
	default:
		fmt.Fprintf(stderr, "sipctl %s: %s\n", cmd.name, describe(err))
		return 1
	}
}

// find matches the longest command name at the start of args.
func find(args []string) (command, []string, bool) {
	var best command
	bestWords := 0
	for _, cmd := range commands() {
		words := strings.Fields(cmd.name)
		if len(words) > len(args) || len(words) <= bestWords {
			continue
		}
		match := true
		for i, w := range words {
			if args[i] != w {
				match = false
				break
			}
		}
		if match {
			best, bestWords = cmd, len(words)
		}
	}
	if bestWords == 0 {
		return command{}, nil, false
	}
	return best, args[bestWords:], true
}

// globalFlags defines the options on fs; commands define them too, so
// that `-o json` works before or after the command.
func (c *cli) globalFlags(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.opts.Registrar, "registrar", envOr(getenv, EnvRegistrar, DefaultRegistrar), "registrar gRPC address (env "+EnvRegistrar+")")
	fs.StringVar(&c.opts.Router, "router", envOr(getenv, EnvRouter, DefaultRouter), "router gRPC address (env "+EnvRouter+")")
	fs.StringVar(&c.opts.Output, "o", "table", "output format: table or json")
	fs.DurationVar(&c.opts.Timeout, "timeout", DefaultTimeout, "deadline of the whole command")
}

// flags returns a command's flag set carrying the global flags too.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("sipctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	fs.StringVar(&c.opts.Registrar, "registrar", c.opts.Registrar, "registrar gRPC address")
	fs.StringVar(&c.opts.Router, "router", c.opts.Router, "router gRPC address")
	fs.StringVar(&c.opts.Output, "o", c.opts.Output, "output format: table or json")
	fs.DurationVar(&c.opts.Timeout, "timeout", c.opts.Timeout, "deadline of the whole command")
	return fs
}

// parse parses a command's flags and checks the global ones.
func (c *cli) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if c.opts.Output != "table" && c.opts.Output != "json" {
		return fmt.Errorf("%w: -o %q must be table or json", errUsage, c.opts.Output)
	}
	if c.opts.Timeout <= 0 {
		return fmt.Errorf("%w: -timeout (%s) must be > 0", errUsage, c.opts.Timeout)
	}
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if getenv != nil {
		if v := getenv(key); v != "" {
			return v
		}
	}
	return def
}

func (c *cli) usage() {
	w := c.stderr
	fmt.Fprintf(w, "usage: sipctl [-registrar ADDR] [-router ADDR] [-o table|json] [-timeout D] COMMAND [ARGS]\n\ncommands:\n")
	for _, cmd := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n      %s\n", cmd.name, cmd.args, cmd.summary)
	}
	fmt.Fprintf(w, "\nThe registrar defaults to %s ($%s), the router to %s ($%s), metrics to %s ($%s).\n",
		DefaultRegistrar, EnvRegistrar, DefaultRouter, EnvRouter, DefaultMetrics, EnvMetrics)
}

// dial connects to addr; the connection is closed when the command ends.
func (c *cli) dial(addr string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	c.conns = append(c.conns, conn)
	return conn, nil
}

func (c *cli) registrar() (registrarv1.RegistrarServiceClient, error) {
	conn, err := c.dial(c.opts.Registrar)
	if err != nil {
		return nil, err
	}
	return registrarv1.NewRegistrarServiceClient(conn), nil
}

func (c *cli) router() (routerv1.RouterServiceClient, error) {
	conn, err := c.dial(c.opts.Router)
	if err != nil {
		return nil, err
	}
	return routerv1.NewRouterServiceClient(conn), nil
}

func (c *cli) close() {
	for _, conn := range c.conns {
		_ = conn.Close()
	}
}

// withTimeout bounds a command by -timeout.
func (c *cli) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// describe turns a gRPC status into "code: message", other errors as they are.
func describe(err error) string {
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s: %s", s.Code(), s.Message())
	}
	return err.Error()
}
