package listeners_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/rs/zerolog"

	"github.com/handoff-go/handoff/listeners"
	"github.com/handoff-go/handoff/server"
)

// An HTTP listener and a raw TCP one in the same server. The TCP handler
// stops reading when the server drains, so a quiet client cannot hold the
// drain until hammer time.
func Example() {
	srv := server.New(server.WithLogger(zerolog.Nop()))
	srv.Listen("api", "127.0.0.1:0", listeners.HTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over "+r.Proto)
	}))).
		Listen("echo", "127.0.0.1:0", listeners.TCP(func(ctx context.Context, c net.Conn) {
			stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
			defer stop()
			io.Copy(c, c)
		}))
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

	c, err := net.Dial("tcp", srv.Addr("echo").String())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Fprintln(c, "ping")
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)

	srv.Shutdown(context.Background()) // the echo handler returns; the drain ends
	c.Close()
	fmt.Println(<-done)
	// Output:
	// hello over HTTP/1.1
	// ping
	// <nil>
}
