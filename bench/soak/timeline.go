//go:build linux

package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// event is a restart or a fault, at a time since the start.
type event struct {
	At   time.Duration `json:"at_ns"`
	Kind string        `json:"kind"` // "restart" or "fault"
	Name string        `json:"name,omitempty"`
}

// failure is one client error: the try began at began and failed at at.
type failure struct {
	began, at time.Duration
	proto     string
	client    int
	err       string
}

// bucket is the resolution at which each client's answers are kept.
const bucket = 100 * time.Millisecond

// timeline counts, per protocol and second, what clients got.
type timeline struct {
	start time.Time

	mu       sync.Mutex
	ok       map[string][]int
	failures []failure
	events   []event
	procs    []int          // server processes alive, per second
	windows  []window       // spans in which a fault explains errors
	answered map[int][]bool // per client, per bucket: answered in it
}

func newTimeline() *timeline {
	return &timeline{start: time.Now(), ok: map[string][]int{}}
}

func (tl *timeline) second() int { return int(time.Since(tl.start) / time.Second) }

// grow makes s long enough to index i.
func grow[T any](s []T, i int) []T {
	if len(s) <= i {
		s = append(s, make([]T, i+1-len(s))...)
	}
	return s
}

func (tl *timeline) success(proto string, client int) { tl.answers(proto, client, 1, 1) }

// answers records n answers, just now, to clients first to first+count-1
// (a load generator's connections, which it reports on together).
func (tl *timeline) answers(proto string, first, count, n int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if n <= 0 {
		return
	}
	if tl.answered == nil {
		tl.answered = map[int][]bool{}
	}
	k := int(time.Since(tl.start) / bucket)
	for client := first; client < first+count; client++ {
		tl.answered[client] = grow(tl.answered[client], k)
		tl.answered[client][k] = true
	}
	i := tl.second()
	tl.ok[proto] = grow(tl.ok[proto], i)
	tl.ok[proto][i] += n
}

func (tl *timeline) fail(proto string, client int, began time.Time, err error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if _, ok := tl.ok[proto]; !ok {
		tl.ok[proto] = nil
	}
	tl.failures = append(tl.failures, failure{began: began.Sub(tl.start), at: time.Since(tl.start), proto: proto, client: client, err: err.Error()})
}

// answeredBetween reports whether client was answered after from and
// before to, to a bucket's precision. tl.mu is held.
func (tl *timeline) answeredBetween(client int, from, to time.Duration) bool {
	b := tl.answered[client]
	for i := int(from/bucket) + 1; i < int(to/bucket) && i < len(b); i++ {
		if b[i] {
			return true
		}
	}
	return false
}

func (tl *timeline) mark(kind, name string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, event{At: time.Since(tl.start), Kind: kind, Name: name})
}

func (tl *timeline) processes(n int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	i := tl.second()
	tl.procs = grow(tl.procs, i)
	tl.procs[i] = max(tl.procs[i], n)
}

func (tl *timeline) protocols() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []string
	for p := range tl.ok {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func (tl *timeline) seconds() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := len(tl.procs)
	for _, s := range tl.ok {
		n = max(n, len(s))
	}
	return n
}

// series is the requests answered per second, per protocol, and the
// processes alive.
func (tl *timeline) series() map[string][]int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	out := map[string][]int{"processes": slices.Clone(tl.procs)}
	for p, s := range tl.ok {
		out[p] = slices.Clone(s)
	}
	return out
}

// window is a span of time in which a fault makes some errors
// unavoidable: those of tries that overlap it. With recover, it lasts,
// for each client, until that client is answered again (one that backs
// off after an outage, as grpc-go does, fails for a while after the
// server is back).
type window struct {
	from, to time.Duration
	fault    string
	recover  bool
}

// explain says that the errors of tries overlapping the span from from
// to d from now are fault's; with recover, until each protocol is
// answered again after that.
func (tl *timeline) explain(fault string, from time.Time, d time.Duration, recover bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.windows = append(tl.windows, window{from: from.Sub(tl.start), to: time.Since(tl.start) + d, fault: fault, recover: recover})
}

func faultWindows(tl *timeline) []window {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.windows)
}

// clientRace names the one error that is the client's own: quic-go's
// HTTP/3 client closes its connection (H3_NO_ERROR, locally) when a GOAWAY
// finds no request in flight, and a request it has just opened but not
// yet counted dies with it (http3/client.go: handleControlStream against
// openRequestStream). No server can prevent it.
const clientRace = "quic-go client GOAWAY race"

// cause returns the fault that explains f, if one does: of several, the
// one that began last before f ended (a wrk run of a second can span two
// faults, and the later one, a stop say, is what its errors came from).
// tl.mu is held.
func (tl *timeline) cause(f failure, windows []window) (string, bool) {
	if f.proto == "http3" && strings.Contains(f.err, "H3_NO_ERROR (local)") {
		return clientRace, true
	}
	var found *window
	for i, w := range windows {
		explains := f.began <= w.to && f.at >= w.from
		if w.recover {
			// From the fault on, until the client is answered again
			// after the span.
			explains = f.at >= w.from && !tl.answeredBetween(f.client, w.to, f.began)
		}
		if explains && (found == nil || w.from > found.from) {
			found = &windows[i]
		}
	}
	if found == nil {
		return "", false
	}
	return found.fault, true
}

// totals returns what proto got: answers, errors no fault explains, and
// errors by the fault that explains them. With print, unexplained errors
// are printed.
func (tl *timeline) totals(proto string, windows []window, print bool) (ok, unexplained int, explained map[string]int) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for _, n := range tl.ok[proto] {
		ok += n
	}
	explained = map[string]int{}
	for _, f := range tl.failures {
		if f.proto != proto {
			continue
		}
		if fault, ok := tl.cause(f, windows); ok {
			explained[fault]++
			continue
		}
		unexplained++
		if print {
			fmt.Printf("  %s error at %v: %s\n", proto, f.at.Round(time.Millisecond), f.err)
		}
	}
	return ok, unexplained, explained
}

// affected counts the clients that fault cost errors.
func (tl *timeline) affected(fault string, windows []window) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	clients := map[int]bool{}
	for _, f := range tl.failures {
		if c, ok := tl.cause(f, windows); ok && c == fault {
			clients[f.client] = true
		}
	}
	return len(clients)
}

// chart draws the run as an SVG: requests per second per protocol,
// processes alive, restarts and faults, and errors.
func chart(tl *timeline, title string) string {
	series := tl.series()
	n := tl.seconds() - 1 // the last second is not over
	for p := range series {
		if len(series[p]) > n {
			series[p] = series[p][:max(n, 0)]
		}
	}
	windows := faultWindows(tl)
	tl.mu.Lock()
	events := slices.Clone(tl.events)
	// Errors per second: those a fault explains, and the others.
	explainedAt, unexplainedAt := map[int]int{}, map[int]int{}
	for _, f := range tl.failures {
		sec := int(f.at / time.Second)
		if _, ok := tl.cause(f, windows); ok {
			explainedAt[sec]++
		} else {
			unexplainedAt[sec]++
		}
	}
	tl.mu.Unlock()
	const w, h, left, top, plotH = 1000.0, 420.0, 60.0, 40.0, 260.0
	plotW := w - left - 20
	if n < 2 {
		n = 2
	}
	x := func(sec float64) float64 { return left + sec/float64(n-1)*plotW }
	peak := 1
	for p, s := range series {
		if p == "processes" {
			continue
		}
		for _, v := range s {
			peak = max(peak, v)
		}
	}
	y := func(v int) float64 { return top + plotH - float64(v)/float64(peak)*plotH }
	colors := []string{"#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f", "#ff7f0e"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="20" font-size="14">handoff soak: %s</text>`+"\n", left, title)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#999"/>`+"\n", left, top+plotH, left+plotW, top+plotH)
	fmt.Fprintf(&b, `<text x="5" y="%.0f">%d/s</text><text x="5" y="%.0f">0</text>`+"\n", top+4, peak, top+plotH)
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%d s</text>`+"\n", left+plotW-30, top+plotH+14, n-1)
	var names []string
	for p := range series {
		if p != "processes" {
			names = append(names, p)
		}
	}
	slices.Sort(names)
	for i, p := range names {
		var pts []string
		for sec, v := range series[p] {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(sec)), y(v)))
		}
		c := colors[i%len(colors)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s">%s</text>`+"\n", left+float64(i%5)*180, h-40+float64(i/5)*14, c, p)
	}
	// Processes alive, on a band of their own below the plot.
	band := top + plotH + 30
	fmt.Fprintf(&b, `<text x="5" y="%.0f">procs</text>`+"\n", band+10)
	var pts []string
	for sec, v := range series["processes"] {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(float64(sec)), band+20-float64(min(v, 4))*5))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="black" points="%s"/>`+"\n", strings.Join(pts, " "))
	// Restarts (grey ticks) and faults (orange, labelled on hover) above.
	for _, e := range events {
		ex := x(e.At.Seconds())
		if e.Kind == "restart" {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#bbb"/>`+"\n", ex, top-8, ex, top-2)
		} else {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#ff7f0e" stroke-width="2"><title>%s</title></line>`+"\n", ex, top-14, ex, top-2, e.Name)
		}
	}
	// Errors, per second, below the axis: pink those a fault explains,
	// red the others.
	errorMarks := func(at map[int]int, color string, dy float64, what string) int {
		n := 0
		for sec, c := range at {
			n += c
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="3" height="6" fill="%s"><title>second %d: %d %s</title></rect>`+"\n",
				x(float64(sec))-1, top+plotH+dy, color, sec, c, what)
		}
		return n
	}
	nExplained := errorMarks(explainedAt, "#f4a6b8", 3, "errors explained by a fault")
	nUnexplained := errorMarks(unexplainedAt, "red", 10, "errors no fault explains")
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">grey ticks: restarts; orange: faults; below the axis, seconds with errors: pink explained by a fault (%d), red not (%d)</text>`+"\n",
		left, h-8, nExplained, nUnexplained)
	b.WriteString("</svg>\n")
	return b.String()
}
