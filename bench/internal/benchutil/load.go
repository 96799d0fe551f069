package benchutil

import (
	"regexp"
	"strconv"
)

// Load is what a load generator (wrk or h2load) reported at the end of a
// run.
type Load struct {
	Requests                              int64
	RPS                                   float64
	Connect, Read, Write, Timeout, Non2xx int64
	Failed                                int64 // h2load's failed and errored requests
}

// Errors is every request that went wrong, however.
func (l Load) Errors() int64 {
	return l.Connect + l.Read + l.Write + l.Timeout + l.Non2xx + l.Failed
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkSocket   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	h2Requests  = regexp.MustCompile(`requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout`)
	h2Status    = regexp.MustCompile(`status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx`)
	h2RPS       = regexp.MustCompile(`finished in [\d.]+s, ([\d.]+) req/s`)
)

// num is the i-th number re finds in s, or 0.
func num(re *regexp.Regexp, s string, i int) int64 {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	n, _ := strconv.ParseInt(m[i], 10, 64)
	return n
}

func rate(re *regexp.Regexp, s string) float64 {
	m := re.FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(m[1], 64)
	return f
}

// ParseWrk reads wrk's report. wrk prints the socket errors line only
// when there were some.
func ParseWrk(out string) Load {
	return Load{
		Requests: num(wrkRequests, out, 1),
		RPS:      rate(wrkRPS, out),
		Connect:  num(wrkSocket, out, 1),
		Read:     num(wrkSocket, out, 2),
		Write:    num(wrkSocket, out, 3),
		Timeout:  num(wrkSocket, out, 4),
		Non2xx:   num(wrkNon2xx, out, 1),
	}
}

// ParseH2load reads h2load's report. Requests is every request it
// counted, so requests it neither completed nor reported as failed are
// added to Failed.
func ParseH2load(out string) Load {
	l := Load{
		Requests: num(h2Requests, out, 1),
		RPS:      rate(h2RPS, out),
		Failed:   num(h2Requests, out, 3) + num(h2Requests, out, 4),
		Timeout:  num(h2Requests, out, 5),
		Non2xx:   num(h2Status, out, 2) + num(h2Status, out, 3) + num(h2Status, out, 4),
	}
	if succeeded := num(h2Requests, out, 2); l.Requests > succeeded+l.Failed {
		l.Failed = l.Requests - succeeded
	}
	return l
}
