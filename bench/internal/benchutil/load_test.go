package benchutil

import "testing"

func TestParseWrk(t *testing.T) {
	const out = `Running 1s test @ http://127.0.0.1:8080/
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.10ms    0.31ms   5.02ms   90.12%
    Req/Sec     1.90k    61.23     2.00k    70.00%
  1893 requests in 1.00s, 218.64KB read
  Socket errors: connect 1, read 2, write 3, timeout 4
  Non-2xx or 3xx responses: 5
Requests/sec:   1890.12
Transfer/sec:    218.31KB
`
	got := ParseWrk(out)
	want := Load{Requests: 1893, RPS: 1890.12, Connect: 1, Read: 2, Write: 3, Timeout: 4, Non2xx: 5}
	if got != want {
		t.Fatalf("ParseWrk = %+v, want %+v", got, want)
	}
	if got.Errors() != 15 {
		t.Fatalf("Errors = %d, want 15", got.Errors())
	}
	if clean := ParseWrk("  10 requests in 1.00s, 1KB read\nRequests/sec: 10.00\n"); clean.Errors() != 0 || clean.Requests != 10 {
		t.Fatalf("a run without errors: %+v", clean)
	}
}

func TestParseH2load(t *testing.T) {
	const out = `finished in 2.00s, 500.00 req/s, 1.00MB/s
requests: 1000 total, 1000 started, 990 done, 980 succeeded, 10 failed, 5 errored, 2 timeout
status codes: 975 2xx, 1 3xx, 2 4xx, 2 5xx
`
	got := ParseH2load(out)
	// 20 requests neither succeeded nor reported failed or errored: all
	// 1000 - 980 count as failed.
	want := Load{Requests: 1000, RPS: 500, Failed: 20, Timeout: 2, Non2xx: 5}
	if got != want {
		t.Fatalf("ParseH2load = %+v, want %+v", got, want)
	}
}
