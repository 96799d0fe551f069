// Command endless serves the bench's routes with fvbock/endless: SIGHUP
// forks a child that inherits the socket, and the child stops its parent,
// which shuts its server down with net/http.
package main

import (
	"fmt"
	"os"

	"github.com/fvbock/endless"

	"handoffbench/common"
)

func main() {
	f := common.Parse()
	endless.DefaultHammerTime = f.Hammer
	srv := endless.NewServer(f.API, common.Mux())
	common.WritePID(f.PIDFile)
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
