//go:build linux

// Command soak runs the test server with every kind of listener at once
// (HTTP/1.1 with keep-alive and with Connection: close, HTTP/2 and HTTP/3
// over TLS, websockets, raw TCP, HTTP over a unix socket, UDP, and gRPC
// through listeners.Serve: see ./server), drives each with real clients
// (net/http, wrk, quic-go, gorilla/websocket, grpc-go, plain sockets), and
// restarts it -restarts times, -pace apart. Before some restarts it
// injects a fault (-faults is their share; -seed makes a run repeatable,
// and is printed): every kind once, in a random order, then at random.
//
//	cd bench/soak && go run .                              # 1,000 restarts
//	cd bench/soak && go run . -restarts 50 -pace 200ms     # what CI runs
//
// At the end it prints, per protocol, the requests answered and the
// errors; errors that a fault makes unavoidable (SIGKILL of a draining
// process cuts its connections) are counted apart, under that fault. It
// checks that one server process is left, that no zombie is, and that
// the last process holds no more descriptors, memory or goroutines than
// the first (both measured with no client connected), and writes a chart
// (soak.svg) and the numbers (soak.json) to -out. It exits 1 when a check
// fails or any error is not explained by a fault.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"time"
)

func main() {
	restarts := flag.Int("restarts", 1000, "restarts")
	pace := flag.Duration("pace", time.Second, "time between two restarts")
	faults := flag.Float64("faults", 0.3, "share of restarts preceded by a fault (0 to 1)")
	seed := flag.Uint64("seed", 0, "seed of the fault schedule (0: from the clock)")
	out := flag.String("out", ".", "directory for soak.svg and soak.json")
	wrk := flag.Bool("wrk", true, "load HTTP/1.1 with wrk as well (Debian's wrk package)")
	flag.Parse()
	if _, err := exec.LookPath("wrk"); *wrk && err != nil {
		fmt.Fprintln(os.Stderr, "soak: wrk is not installed (apt-get install wrk), or run with -wrk=false")
		os.Exit(1)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	fmt.Printf("soak: %d restarts, %v apart, faults before %.0f%% of them, seed %d\n", *restarts, *pace, *faults*100, *seed)
	r := &run{restarts: *restarts, pace: *pace, faultShare: *faults, wrk: *wrk, rng: rand.New(rand.NewPCG(*seed, *seed^0x5eed)), out: *out}
	if err := r.main(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}
