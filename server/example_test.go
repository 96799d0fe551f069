package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/server"
)

// A server with one HTTP listener, driven through its methods.
func Example() {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	srv := server.New(server.WithHandler(mux), server.WithLogger(zerolog.Nop()))
	srv.Listen("api", "127.0.0.1:0")

	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	<-srv.Serving()

	resp, err := http.Get("http://" + srv.Addr("api").String() + "/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	srv.Shutdown(context.Background())
	fmt.Println(<-done)
	// Output:
	// hello
	// <nil>
}
