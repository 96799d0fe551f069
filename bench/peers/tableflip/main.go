// Command tableflip serves the bench's routes with cloudflare/tableflip as
// its documentation shows: SIGHUP upgrades, the new process says Ready, the
// old one calls http.Server.Shutdown.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/cloudflare/tableflip"

	"handoffbench/common"
)

func main() {
	f := common.Parse()
	upg, err := tableflip.New(tableflip.Options{PIDFile: f.PIDFile})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer upg.Stop()
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGHUP)
		for range sig {
			if err := upg.Upgrade(); err != nil {
				fmt.Fprintln(os.Stderr, "upgrade:", err)
			}
		}
	}()
	ln, err := upg.Listen("tcp", f.API)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: common.Mux()}
	go srv.Serve(ln)
	if err := upg.Ready(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	<-upg.Exit()
	ctx, cancel := context.WithTimeout(context.Background(), f.Hammer)
	defer cancel()
	srv.Shutdown(ctx)
}
