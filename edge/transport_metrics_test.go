package edge

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sipd/sipd/edge/transport"
)

func TestTransportCollector(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := &transportCollector{stats: func() transport.Stats {
		return transport.Stats{Connections: 3, Accepted: 7, Refused: 1, Parked: 2, Dropped: 4, TLSErrors: 5, KeepAlives: 6}
	}}
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		want float64
	}{
		{"sipd_edge_transport_connections", 3},
		{"sipd_edge_transport_accepted_total", 7},
		{"sipd_edge_transport_refused_total", 1},
		{"sipd_edge_transport_parked_connections", 2},
		{"sipd_edge_transport_dropped_total", 4},
		{"sipd_edge_transport_tls_errors_total", 5},
		{"sipd_edge_transport_keepalives_total", 6},
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if m.GetCounter() != nil {
			got[mf.GetName()] = m.GetCounter().GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v, ok := got[tt.name]; !ok || v != tt.want {
				t.Errorf("%s = %v (present %v), want %v", tt.name, v, ok, tt.want)
			}
		})
	}
	if n := testutil.CollectAndCount(c); n != len(transportMetrics) {
		t.Errorf("collected %d metrics, want %d", n, len(transportMetrics))
	}
}

// TestEdgeRegistersTransportMetrics checks New registers the collector.
func TestEdgeRegistersTransportMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	te := startEdge(t, testConfig(), Deps{Registerer: reg})
	_ = te
	n, err := testutil.GatherAndCount(reg, "sipd_edge_transport_connections", "sipd_edge_transport_received_total")
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("gathered %d transport metrics, want 2", n)
	}
}
