package registrar

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	registrarv1 "github.com/sipd/sipd/proto/gen/sipd/registrar/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

var t0 = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// publisher records published events.
type publisher struct {
	mu     sync.Mutex
	events []*registrarv1.BindingEvent
}

func (p *publisher) Publish(subject string, data []byte) error {
	e := &registrarv1.BindingEvent{}
	if err := proto.Unmarshal(data, e); err != nil {
		return err
	}
	if subject != SubjectFor(e.GetAor()) {
		e.Origin = "wrong subject " + subject
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.events = append(p.events, e)
	return nil
}

func (p *publisher) take() []*registrarv1.BindingEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.events
	p.events = nil
	return e
}

type fixture struct {
	r     *Registrar
	clock *clock
	pub   *publisher
	reg   *prometheus.Registry
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	f := &fixture{clock: &clock{now: t0}, pub: &publisher{}, reg: prometheus.NewRegistry()}
	if cfg.Origin == "" {
		cfg.Origin = "test-origin"
	}
	r, err := New(cfg, Deps{Store: NewMemoryStore(), Events: f.pub, Registerer: f.reg, Now: f.clock.Now})
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	f.r = r
	return f
}

// metric returns the value of the metric name with the given labels, 0 if
// absent.
func (f *fixture) metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatalf("Gather = %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

// reg builds a REGISTER for alice with the given contacts.
func reg(callID string, cseq uint32, contacts ...*registrarv1.ContactUpdate) *registrarv1.RegisterRequest {
	return &registrarv1.RegisterRequest{
		Aor:      "sip:alice@Example.COM",
		CallId:   callID,
		Cseq:     cseq,
		Contacts: contacts,
		Flow: &registrarv1.Flow{
			Edge:      "edge1.example.com:5060",
			Transport: registrarv1.Transport_TRANSPORT_UDP,
			Source:    "198.51.100.7:40000",
			Local:     "192.0.2.1:5060",
		},
		UserAgent: "phone/1.0",
	}
}

func contact(uri string) *registrarv1.ContactUpdate {
	return &registrarv1.ContactUpdate{Uri: uri}
}

func contactExp(uri string, expires time.Duration) *registrarv1.ContactUpdate {
	return &registrarv1.ContactUpdate{Uri: uri, Expires: dur(expires)}
}

func withExpires(req *registrarv1.RegisterRequest, d time.Duration) *registrarv1.RegisterRequest {
	req.Expires = dur(d)
	return req
}
