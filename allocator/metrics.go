package allocator

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// OversizeClass is the class label of requests above the largest class.
const OversizeClass = "oversize"

var (
	descGets = prometheus.NewDesc("sipd_allocator_gets_total",
		"Buffers requested, by size class (bytes, or oversize).", []string{"class"}, nil)
	descHits = prometheus.NewDesc("sipd_allocator_hits_total",
		"Buffer requests served from a free list, by size class.", []string{"class"}, nil)
	descMisses = prometheus.NewDesc("sipd_allocator_misses_total",
		"Buffer requests that allocated, by size class (every oversize request is a miss).", []string{"class"}, nil)
	descPuts = prometheus.NewDesc("sipd_allocator_puts_total",
		"Buffers given back, by size class.", []string{"class"}, nil)
	descDrops = prometheus.NewDesc("sipd_allocator_drops_total",
		"Buffers given back but not retained (grown past their class, or over a cap), by size class.", []string{"class"}, nil)
	descInUse = prometheus.NewDesc("sipd_allocator_in_use_bytes",
		"Bytes of buffers handed out and not given back, by size class.", []string{"class"}, nil)
	descRetained = prometheus.NewDesc("sipd_allocator_retained_bytes",
		"Bytes held in free lists, by size class.", []string{"class"}, nil)
	descWasted = prometheus.NewDesc("sipd_allocator_wasted_bytes",
		"Bytes of buffers in use lost to rounding up to the size class, by size class.", []string{"class"}, nil)
	descMaxBytes = prometheus.NewDesc("sipd_allocator_max_bytes",
		"Cap of the bytes held in free lists, all classes.", nil, nil)
)

// Collector returns a prometheus.Collector exporting a's report as the
// sipd_allocator_* metrics, labelled by class (the size in bytes, or
// "oversize"). Each scrape takes one Report.
func (a *Allocator) Collector() prometheus.Collector { return collector{a} }

type collector struct{ a *Allocator }

var _ prometheus.Collector = collector{}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGets, descHits, descMisses, descPuts, descDrops, descInUse, descRetained, descWasted, descMaxBytes} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.a.Report()
	counter := func(d *prometheus.Desc, v uint64, class string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), class)
	}
	gauge := func(d *prometheus.Desc, v int64, class string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), class)
	}
	for _, cr := range r.Classes {
		class := strconv.Itoa(cr.Size)
		counter(descGets, cr.Gets, class)
		counter(descHits, cr.Hits, class)
		counter(descMisses, cr.Misses, class)
		counter(descPuts, cr.Puts, class)
		counter(descDrops, cr.Drops, class)
		gauge(descInUse, cr.InUseBytes, class)
		gauge(descRetained, cr.RetainedBytes, class)
		gauge(descWasted, cr.WastedBytes, class)
	}
	o := r.Oversize
	counter(descGets, o.Gets, OversizeClass)
	counter(descHits, 0, OversizeClass)
	counter(descMisses, o.Gets, OversizeClass)
	counter(descPuts, o.Puts, OversizeClass)
	counter(descDrops, o.Puts, OversizeClass)
	gauge(descInUse, o.InUseBytes, OversizeClass)
	gauge(descRetained, 0, OversizeClass)
	gauge(descWasted, 0, OversizeClass)
	ch <- prometheus.MustNewConstMetric(descMaxBytes, prometheus.GaugeValue, float64(r.MaxBytes))
}
