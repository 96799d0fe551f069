//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/handoff-go/handoff/bench/internal/benchutil"
)

// wrkConns is how many keep-alive connections wrk holds.
const wrkConns = 4

// wrkLoop loads the HTTP/1.1 listener with wrk until ctx ends. wrk reports
// its errors only as totals at the end of a run, so it runs for a second
// at a time: each error is then placed in time to within its run, which
// is what says whether a fault explains it. Its connections are clients
// first to first+wrkConns-1 of the timeline.
//
// Each connection waits 2ms between requests (wrk's delay hook): at full
// speed wrk would take a core from the server and the other clients.
func (r *run) wrkLoop(ctx context.Context, first int) {
	script := filepath.Join(r.dir, "wrk-pace.lua")
	if err := os.WriteFile(script, []byte("function delay() return 2 end\n"), 0o644); err != nil {
		r.tl.fail("wrk", first, time.Now(), err)
		return
	}
	for ctx.Err() == nil {
		began := time.Now()
		out, err := exec.CommandContext(ctx, "wrk", "-t", "1", "-c", fmt.Sprint(wrkConns), "-d", "1s",
			"--timeout", "10s", "-s", script, "http://"+r.api+"/").CombinedOutput()
		if ctx.Err() != nil {
			return // cut short by the end of the soak: not a result
		}
		if err != nil {
			r.tl.fail("wrk", first, began, fmt.Errorf("wrk: %v: %s", err, out))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		load := benchutil.ParseWrk(string(out))
		if load.Requests == 0 && load.Errors() == 0 {
			r.tl.fail("wrk", first, began, fmt.Errorf("wrk reported nothing: %s", out))
			time.Sleep(100 * time.Millisecond)
			continue
		}
		r.tl.answers("wrk", first, wrkConns, int(load.Requests-load.Non2xx))
		errs := fmt.Errorf("wrk: connect %d, read %d, write %d, timeout %d, non-2xx %d in a 1s run",
			load.Connect, load.Read, load.Write, load.Timeout, load.Non2xx)
		for i := range load.Errors() {
			r.tl.fail("wrk", first+int(i)%wrkConns, began, errs)
		}
	}
}
