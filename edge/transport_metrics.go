package edge

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sipd/sipd/edge/transport"
)

// transportCollector exports the transport layer's Stats as
// sipd_edge_transport_* metrics, read at each scrape.
type transportCollector struct {
	stats func() transport.Stats
}

var _ prometheus.Collector = (*transportCollector)(nil)

type transportMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(s *transport.Stats) float64
}

func newTransportMetric(name, help string, kind prometheus.ValueType, v func(s *transport.Stats) float64) transportMetric {
	return transportMetric{desc: prometheus.NewDesc("sipd_edge_transport_"+name, help, nil, nil), kind: kind, value: v}
}

var transportMetrics = []transportMetric{
	newTransportMetric("connections", "Open stream connections (TCP, TLS, WS, WSS), inbound and outbound.", prometheus.GaugeValue,
		func(s *transport.Stats) float64 { return float64(s.Connections) }),
	newTransportMetric("parked_connections", "Idle connections parked without a reading goroutine.", prometheus.GaugeValue,
		func(s *transport.Stats) float64 { return float64(s.Parked) }),
	newTransportMetric("accepted_total", "Stream connections accepted.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.Accepted) }),
	newTransportMetric("dialed_total", "Stream connections dialled.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.Dialed) }),
	newTransportMetric("dial_failures_total", "Dials that failed.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.DialFailures) }),
	newTransportMetric("refused_total", "Accepted connections closed at once for max_connections.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.Refused) }),
	newTransportMetric("dropped_total", "Datagrams dropped for exceeding max_message_size.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.Dropped) }),
	newTransportMetric("idle_closed_total", "Connections closed for tcp_idle_timeout.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.IdleClosed) }),
	newTransportMetric("framing_errors_total", "Stream connections closed for a framing error.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.FramingErrors) }),
	newTransportMetric("tls_errors_total", "TLS handshakes and WebSocket upgrades that failed.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.TLSErrors) }),
	newTransportMetric("keepalives_total", "Double-CRLF keep-alives answered.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.KeepAlives) }),
	newTransportMetric("received_total", "SIP messages received.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.Received) }),
	newTransportMetric("sent_total", "SIP messages sent.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.Sent) }),
	newTransportMetric("send_errors_total", "Sends that failed.", prometheus.CounterValue,
		func(s *transport.Stats) float64 { return float64(s.SendErrors) }),
}

// Describe implements prometheus.Collector.
func (c *transportCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range transportMetrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector.
func (c *transportCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, m := range transportMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&s))
	}
}
