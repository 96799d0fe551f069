// Command grace serves the bench's routes with facebookgo/grace: SIGUSR2
// starts a child with the socket, which stops its parent; the parent
// drains through facebookgo/httpdown.
package main

import (
	"fmt"
	"net/http"
	"os"

	"github.com/facebookgo/grace/gracehttp"

	"handoffbench/common"
)

func main() {
	f := common.Parse()
	common.WritePID(f.PIDFile)
	if err := gracehttp.Serve(&http.Server{Addr: f.API, Handler: common.Mux()}); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
