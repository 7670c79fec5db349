package registrar

import (
	"errors"

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

type metrics struct {
	registrations *prometheus.CounterVec
	aors          prometheus.Gauge
	contacts      prometheus.Gauge
	lookups       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		registrations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_registrar_registrations_total",
			Help: "REGISTER requests handled, by result and reason.",
		}, []string{"result", "reason"}),
		aors: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sipd_registrar_aors",
			Help: "AORs with at least one binding.",
		}),
		contacts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sipd_registrar_contacts",
			Help: "Bindings held, including those expired since the last sweep.",
		}),
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_registrar_lookups_total",
			Help: "Lookups answered, by status (found, no_contacts, unknown, error).",
		}, []string{"status"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.registrations, m.aors, m.contacts, m.lookups} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
