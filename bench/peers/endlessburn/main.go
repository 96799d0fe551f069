// Command endlessburn is the endless peer with a known extra cost: each
// process that a restart starts burns 4.5 ms of CPU before it serves. It
// calibrates the paired comparison: run in handoff's place against
// endless, it shows what a few milliseconds of CPU per restart weigh at
// one restart a second.
package main

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/fvbock/endless"

	"handoffbench/common"
)

const burn = 4500 * time.Microsecond

// cpuTime is the CPU this process has used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	f := common.Parse()
	if os.Getenv("ENDLESS_CONTINUE") != "" { // endless's mark of a restarted process
		for start := cpuTime(); cpuTime()-start < burn; {
			for i := 0; i < 10000; i++ {
				_ = i * i
			}
		}
	}
	endless.DefaultHammerTime = f.Hammer
	srv := endless.NewServer(f.API, common.Mux())
	common.WritePID(f.PIDFile)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
