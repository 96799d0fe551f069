// Package metrics exports a handoff server's state to Prometheus. It is a
// package of its own so that programs that do not use Prometheus do not
// build its client.
//
//	prometheus.MustRegister(metrics.NewCollector(srv))
//	admin.Handle("/metrics", promhttp.Handler())
//
// The metrics, read from Server.Stats at each scrape:
//
//	handoff_generation                          restarts that led to this process
//	handoff_restarts_total{result}              restarts this process made, result "succeeded" or "failed"
//	handoff_draining                            1 while the process drains, else 0
//	handoff_drain_seconds                       how long the drain has run, or took
//	handoff_requests_in_flight                  HTTP requests being handled
//	handoff_open_connections{listener,kind}     open connections of each listener (hijacked ones apart;
//	                                            for a packet listener, 1 while its handler runs)
//	handoff_hijacked_connections                open hijacked connections (websockets)
//	handoff_hammered_connections_total          connections closed by force at hammer time
//	handoff_certificate_expiry_timestamp_seconds{listener}  earliest NotAfter of a listener's certificates
//
// Each process of a restart has its own counters: after a handoff the new
// process starts from zero, as any restarted process does, and
// handoff_generation tells them apart.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/handoff-go/handoff/server"
)

// Collector is a prometheus.Collector of one server's state.
type Collector struct {
	srv *server.Server

	generation, restarts, draining, drain, inflight, open, hijacked, hammered, expiry *prometheus.Desc
}

// NewCollector returns a Collector of srv's state.
func NewCollector(srv *server.Server) *Collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("handoff_"+name, help, labels, nil)
	}
	return &Collector{
		srv:        srv,
		generation: d("generation", "Restarts that led to this process (0 for the first one started)."),
		restarts:   d("restarts_total", "Restarts this process made, by result.", "result"),
		draining:   d("draining", "1 while this process drains, else 0."),
		drain:      d("drain_seconds", "How long the drain has run, or took once over; 0 before it starts."),
		inflight:   d("requests_in_flight", "HTTP requests being handled."),
		open:       d("open_connections", "Open connections of each listener, hijacked ones apart.", "listener", "kind"),
		hijacked:   d("hijacked_connections", "Open hijacked connections (websockets)."),
		hammered:   d("hammered_connections_total", "Connections closed by force at hammer time."),
		expiry:     d("certificate_expiry_timestamp_seconds", "Earliest expiry of a listener's certificates, in seconds since the Unix epoch.", "listener"),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.generation, c.restarts, c.draining, c.drain, c.inflight, c.open, c.hijacked, c.hammered, c.expiry} {
		ch <- d
	}
}

// Collect sends the metrics of a fresh snapshot of the server.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.srv.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.generation, float64(st.Generation))
	counter(c.restarts, float64(st.RestartsSucceeded), "succeeded")
	counter(c.restarts, float64(st.RestartsFailed), "failed")
	draining := 0.0
	if st.Draining {
		draining = 1
	}
	gauge(c.draining, draining)
	gauge(c.drain, st.Drain.Seconds())
	gauge(c.inflight, float64(st.InFlight))
	gauge(c.hijacked, float64(st.Hijacked))
	counter(c.hammered, float64(st.Hammered))
	for _, l := range st.Listeners {
		gauge(c.open, float64(l.Active), l.Name, l.Kind)
		if !l.CertExpiry.IsZero() {
			gauge(c.expiry, float64(l.CertExpiry.Unix()), l.Name)
		}
	}
}
