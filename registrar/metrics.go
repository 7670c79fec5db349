package registrar

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the registrations_total labels.
const (
	resultAccepted = "accepted"
	resultRejected = "rejected"

	reasonUpdated        = "updated"
	reasonFetch          = "fetch"
	reasonRetransmission = "retransmission"
	reasonInvalid        = "invalid"
	reasonTooBrief       = "interval_too_brief"
	reasonOutOfOrder     = "out_of_order"
	reasonTooManyContact = "too_many_contacts"
	reasonStoreError     = "store_error"
)

// Values of the events_total result label.
const (
	eventPublished = "published"
	eventFailed    = "failed"
)

type metrics struct {
	registrations *prometheus.CounterVec
	lookups       *prometheus.CounterVec
	events        *prometheus.CounterVec
	store         *storeCollector
}

func newMetrics(reg prometheus.Registerer, store Store, log *slog.Logger) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_registrar_registrations_total",
			Help: "REGISTER requests handled, by result and reason.",
		}, []string{"result", "reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_registrar_events_total",
			Help: "Binding events sent to NATS, by result (published, failed).",
		}, []string{"result"}),
		store: newStoreCollector(store, log),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_registrar_lookups_total",
			Help: "Lookups answered, by status (found, no_contacts, unknown, error).",
		}, []string{"status"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.registrations, m.lookups, m.events, m.store} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

// storeCollector reports the store's counts at each scrape, so that the
// gauges are right however many registrars share the store.
type storeCollector struct {
	store    Store
	log      *slog.Logger
	aors     *prometheus.Desc
	contacts *prometheus.Desc
}

// storeStatsTimeout bounds the store query of one scrape.
const storeStatsTimeout = time.Second

func newStoreCollector(store Store, log *slog.Logger) *storeCollector {
	return &storeCollector{
		store: store,
		log:   log,
		aors: prometheus.NewDesc("sipd_registrar_aors",
			"AORs (users) with at least one binding, in the store.", nil, nil),
		contacts: prometheus.NewDesc("sipd_registrar_contacts",
			"Bindings in the store, including those expired since the last sweep.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.aors
	ch <- c.contacts
}

// Collect reports nothing when the store cannot answer, rather than
// failing the whole scrape.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), storeStatsTimeout)
	defer cancel()
	st, err := c.store.Stats(ctx)
	if err != nil {
		c.log.Warn("reading store counts failed", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.aors, prometheus.GaugeValue, float64(st.AORs))
	ch <- prometheus.MustNewConstMetric(c.contacts, prometheus.GaugeValue, float64(st.Contacts))
}
