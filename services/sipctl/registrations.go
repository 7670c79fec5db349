package sipctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
)

// maxListPages bounds reg list against a registrar that never ends a listing.
const maxListPages = 10000

// runRegList pages through every registration, keeping AORs that contain
// -aor.
func runRegList(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("reg list")
	filter := fs.String("aor", "", "show only AORs containing this text")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	reg, err := c.registrar()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	all := &registrarv1.ListResponse{}
	token := ""
	for page := 0; page < maxListPages; page++ {
		resp, err := reg.List(ctx, &registrarv1.ListRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			return err
		}
		for _, rec := range resp.GetRecords() {
			if strings.Contains(rec.GetAor(), *filter) {
				all.Records = append(all.Records, rec)
			}
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, all)
	}
	t := newTable(c.stdout, "AOR", "CONTACT", "EXPIRES", "Q", "EDGE", "SOURCE", "USER-AGENT")
	for _, rec := range all.GetRecords() {
		for _, b := range rec.GetBindings() {
			t.row(rec.GetAor(), b.GetUri(), seconds(b.GetExpires()), qValue(b.GetQ()),
				b.GetFlow().GetEdge(), flowSource(b.GetFlow()), b.GetUserAgent())
		}
	}
	if err := t.flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.stdout, "%d AORs, %d contacts\n", len(all.GetRecords()), t.rows)
	return err
}

// runRegShow looks one AOR up as the router does.
func runRegShow(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("reg show")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: reg show takes one AOR", errUsage)
	}
	reg, err := c.registrar()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	aor := normalizeAOR(fs.Arg(0))
	resp, err := reg.Lookup(ctx, &registrarv1.LookupRequest{Aor: aor})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	fmt.Fprintf(c.stdout, "AOR %s: %s\n", aor, lookupStatus(resp.GetStatus()))
	if len(resp.GetBindings()) == 0 {
		return nil
	}
	t := newTable(c.stdout, "CONTACT", "EXPIRES", "Q", "CALL-ID", "CSEQ", "EDGE", "SOURCE", "RECEIVED", "PATH", "INSTANCE", "USER-AGENT")
	for _, b := range resp.GetBindings() {
		t.row(b.GetUri(), seconds(b.GetExpires()), qValue(b.GetQ()), b.GetCallId(), strconv.FormatUint(uint64(b.GetCseq()), 10),
			b.GetFlow().GetEdge(), flowSource(b.GetFlow()), b.GetReceived(), strings.Join(b.GetPath(), ","), b.GetInstance(), b.GetUserAgent())
	}
	return t.flush()
}

// runRegRemove removes one contact, or every contact, of an AOR.
func runRegRemove(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("reg rm")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		return fmt.Errorf("%w: reg rm takes an AOR and optionally one contact", errUsage)
	}
	reg, err := c.registrar()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &registrarv1.UnregisterRequest{Aor: normalizeAOR(fs.Arg(0)), ContactUri: fs.Arg(1)}
	resp, err := reg.Unregister(ctx, req)
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	_, err = fmt.Fprintf(c.stdout, "removed %d contact(s) of %s\n", resp.GetRemoved(), req.GetAor())
	return err
}

// runRegAdd adds or refreshes one binding.
func runRegAdd(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("reg add")
	expires := fs.Duration("expires", time.Hour, "lifetime of the binding")
	q := fs.Float64("q", 0, "q-value (0 to 1); 0 leaves it unset")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("%w: reg add takes an AOR and a contact", errUsage)
	}
	if *q < 0 || *q > 1 {
		return fmt.Errorf("%w: -q (%g) must be between 0 and 1", errUsage, *q)
	}
	reg, err := c.registrar()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &registrarv1.AddContactRequest{
		Aor:     normalizeAOR(fs.Arg(0)),
		Contact: &registrarv1.ContactUpdate{Uri: fs.Arg(1), Expires: durationpb.New(*expires), Q: int32(*q*1000 + 0.5)},
	}
	resp, err := reg.AddContact(ctx, req)
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	t := newTable(c.stdout, "AOR", "CONTACT", "EXPIRES", "Q")
	for _, b := range resp.GetBindings() {
		t.row(req.GetAor(), b.GetUri(), seconds(b.GetExpires()), qValue(b.GetQ()))
	}
	return t.flush()
}

// runRegFlush removes every binding; it asks for -yes.
func runRegFlush(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("reg flush")
	yes := fs.Bool("yes", false, "really remove every binding")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if !*yes {
		return fmt.Errorf("%w: reg flush removes every binding of every AOR; add -yes", errUsage)
	}
	reg, err := c.registrar()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := reg.Flush(ctx, &registrarv1.FlushRequest{})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	_, err = fmt.Fprintf(c.stdout, "removed %d AOR(s)\n", resp.GetRemovedAors())
	return err
}

// runDomains lists the served domains.
func runDomains(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("domains")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	reg, err := c.registrar()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := reg.ListDomains(ctx, &registrarv1.ListDomainsRequest{})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	t := newTable(c.stdout, "DOMAIN", "REALM", "AUTH")
	for _, d := range resp.GetDomains() {
		t.row(d.GetName(), d.GetRealm(), strconv.FormatBool(d.GetAuthRequired()))
	}
	return t.flush()
}

// runUsers lists a domain's subscribers.
func runUsers(ctx context.Context, c *cli, args []string) error {
	fs := c.flags("users")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: users takes one DOMAIN", errUsage)
	}
	reg, err := c.registrar()
	if err != nil {
		return err
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	resp, err := reg.ListUsers(ctx, &registrarv1.ListUsersRequest{Domain: fs.Arg(0)})
	if err != nil {
		return err
	}
	if c.opts.Output == "json" {
		return writeProto(c.stdout, resp)
	}
	t := newTable(c.stdout, "USER", "DOMAIN")
	for _, u := range resp.GetUsers() {
		t.row(u.GetUsername(), u.GetDomain())
	}
	return t.flush()
}

// normalizeAOR accepts "user@domain" as well as "sip:user@domain".
func normalizeAOR(s string) string {
	if strings.Contains(s, "@") && !strings.HasPrefix(strings.ToLower(s), "sip:") && !strings.HasPrefix(strings.ToLower(s), "sips:") {
		return "sip:" + s
	}
	return s
}

func seconds(d *durationpb.Duration) string {
	if d == nil {
		return ""
	}
	return d.AsDuration().Round(time.Second).String()
}

func qValue(q int32) string {
	if q == 0 {
		return ""
	}
	return strconv.FormatFloat(float64(q)/1000, 'f', -1, 64)
}

func flowSource(f *registrarv1.Flow) string {
	if f == nil || f.GetSource() == "" {
		return ""
	}
	t := strings.ToLower(strings.TrimPrefix(f.GetTransport().String(), "TRANSPORT_"))
	if t == "unspecified" {
		return f.GetSource()
	}
	return t + ":" + f.GetSource()
}

func lookupStatus(s registrarv1.LookupStatus) string {
	switch s {
	case registrarv1.LookupStatus_LOOKUP_STATUS_FOUND:
		return "found"
	case registrarv1.LookupStatus_LOOKUP_STATUS_NO_CONTACTS:
		return "known, no contacts (calls get 480)"
	case registrarv1.LookupStatus_LOOKUP_STATUS_UNKNOWN:
		return "unknown (calls get 404)"
	}
	return s.String()
}
