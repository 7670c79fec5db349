package edge

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the edge's Prometheus collectors.
type metrics struct {
	requests     *prometheus.CounterVec
	responses    *prometheus.CounterVec
	transactions prometheus.GaugeFunc
	grpc         *prometheus.HistogramVec
	malformed    prometheus.Counter
	overload     prometheus.Counter
	panics       prometheus.Counter
}

func newMetrics(inFlight func() float64) *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_edge_requests_total", Help: "SIP requests received, by method.",
		}, []string{"method"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sipd_edge_responses_total", Help: "SIP responses sent or relayed, by class (1xx..6xx).",
		}, []string{"class"}),
		transactions: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sipd_edge_transactions", Help: "SIP transactions in flight, server and client.",
		}, inFlight),
		grpc: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sipd_edge_grpc_duration_seconds",
			Help:    "Latency of the edge's gRPC calls as seen by the edge.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"service", "method", "code"}),
		malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipd_edge_malformed_total", Help: "SIP messages rejected or dropped as malformed.",
		}),
		overload: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipd_edge_overload_total", Help: "Requests refused with 503 because a queue or table was full.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sipd_edge_panics_total", Help: "Panics recovered while handling a SIP message.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.responses, m.transactions, m.grpc, m.malformed, m.overload, m.panics} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

var classLabels = [...]string{"1xx", "1xx", "2xx", "3xx", "4xx", "5xx", "6xx"}

func (m *metrics) response(code int) {
	c := code / 100
	if c < 1 || c > 6 {
		return
	}
	m.responses.WithLabelValues(classLabels[c]).Inc()
}

// methodLabel bounds the method label to the known methods.
func methodLabel(m string) string {
	switch m {
	case "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
		"NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE":
		return m
	}
	return "OTHER"
}

func codeLabel(code int) string { return strconv.Itoa(code) }
