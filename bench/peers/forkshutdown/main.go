// Command forkshutdown is the restart found in many a service's own code
// and in gin's graceful-restart example: on SIGHUP, start the binary again
// with the listening socket as fd 3, then http.Server.Shutdown at once,
// with no word from the child that it serves.
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"handoffbench/common"
)

func main() {
	f := common.Parse()
	var ln net.Listener
	var err error
	if os.Getenv("FORK_LISTEN_FD") != "" {
		ln, err = net.FileListener(os.NewFile(3, "listener"))
	} else {
		ln, err = net.Listen("tcp", f.API)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	common.WritePID(f.PIDFile)
	srv := &http.Server{Handler: common.Mux()}
	go srv.Serve(ln)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	if s := <-sig; s == syscall.SIGHUP {
		if err := restart(ln); err != nil {
			fmt.Fprintln(os.Stderr, "restart:", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.Hammer)
	defer cancel()
	srv.Shutdown(ctx)
}

// restart starts the binary again with the socket as its fd 3.
func restart(ln net.Listener) error {
	file, err := ln.(*net.TCPListener).File()
	if err != nil {
		return err
	}
	defer file.Close()
	p, err := os.StartProcess(os.Args[0], os.Args, &os.ProcAttr{
		Env:   append(os.Environ(), "FORK_LISTEN_FD=3"),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr, file},
	})
	if err != nil {
		return err
	}
	return p.Release()
}
