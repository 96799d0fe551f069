// Package common is what every peer server of the comparison shares: the
// same flags and the same routes as the handoff server the bench builds
// (internal/testbin), so that bench/restart drives them all alike.
package common

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Flags are the command line bench/restart passes.
type Flags struct {
	API     string
	PIDFile string
	Hammer  time.Duration
}

// Parse reads the flags; the ones a peer has no use for are accepted and
// ignored.
func Parse() Flags {
	var f Flags
	flag.StringVar(&f.API, "api", "127.0.0.1:8080", "listen address")
	flag.StringVar(&f.PIDFile, "pidfile", "", "PID file, written by each process when it starts")
	flag.DurationVar(&f.Hammer, "hammer", 30*time.Second, "bound on a drain")
	flag.Parse()
	return f
}

// WritePID writes this process's pid to path, atomically.
func WritePID(path string) {
	if path == "" {
		return
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	os.Rename(tmp, path)
}

// Mux serves / ("ok"), /pid and /slow?ms=N ("slow PID" after N ms).
func Mux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/pid", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, os.Getpid()) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		time.Sleep(time.Duration(ms) * time.Millisecond)
		fmt.Fprintf(w, "slow %d", os.Getpid())
	})
	return mux
}
