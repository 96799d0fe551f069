// Command handoff serves the bench's routes with handoff, written the way
// its README shows, so that it is measured like the peers are: a program
// of the same size doing the same work, nothing of the test server's
// extra listeners and flags.
package main

import (
	"fmt"
	"os"

	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"

	"handoffbench/common"
)

func main() {
	f := common.Parse()
	srv := server.New(server.WithPIDFile(f.PIDFile), server.WithHammerTime(f.Hammer))
	srv.Listen("api", f.API, listeners.HTTP(common.Mux()))
	if err := srv.Serve(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
