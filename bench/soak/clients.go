//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	qhttp3 "github.com/quic-go/quic-go/http3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// startClients starts every client; the func returned stops them and
// waits for them.
func (r *run) startClients() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	clients := 0
	loop := func(proto string, n int, newTry func() (try func() error, done func())) {
		for range n {
			clients++
			id := clients
			wg.Add(1)
			go func() {
				defer wg.Done()
				try, done := newTry()
				defer done()
				for ctx.Err() == nil {
					began := time.Now()
					err := try()
					if errors.Is(err, errAgain) {
						continue
					}
					if err != nil {
						if ctx.Err() != nil {
							return
						}
						r.tl.fail(proto, id, began, err)
						time.Sleep(10 * time.Millisecond)
						continue
					}
					r.tl.success(proto, id)
				}
			}()
		}
	}
	get := func(c *http.Client, url string) error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %s", resp.Status)
		}
		return nil
	}
	httpClient := func(tr http.RoundTripper) *http.Client { return &http.Client{Transport: tr, Timeout: 15 * time.Second} }

	loop("http1", 6, func() (func() error, func()) {
		tr := &http.Transport{MaxIdleConnsPerHost: 1}
		c := httpClient(tr)
		return func() error { return get(c, "http://"+r.api+"/") }, tr.CloseIdleConnections
	})
	loop("http1-close", 2, func() (func() error, func()) {
		tr := &http.Transport{DisableKeepAlives: true}
		c := httpClient(tr)
		return func() error { return get(c, "http://"+r.api+"/") }, tr.CloseIdleConnections
	})
	loop("http2", 4, func() (func() error, func()) {
		tr := &http.Transport{TLSClientConfig: r.tlsConfig(), ForceAttemptHTTP2: true}
		c := httpClient(tr)
		return func() error { return get(c, "https://"+r.tls+"/") }, tr.CloseIdleConnections
	})
	loop("http3", http3Clients, func() (func() error, func()) {
		tr := &qhttp3.Transport{TLSClientConfig: r.tlsConfig()}
		c := httpClient(tr)
		return func() error { return get(c, "https://"+r.tls+"/") }, func() { tr.Close() }
	})
	loop("unix-http", 2, func() (func() error, func()) {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", r.unixPath)
		}}
		c := httpClient(tr)
		return func() error { return get(c, "http://unix/") }, tr.CloseIdleConnections
	})
	loop("tcp-echo", 2, func() (func() error, func()) {
		return func() error { return lineOnce(r.echo) }, func() {}
	})
	loop("grpc", 4, func() (func() error, func()) {
		conn, err := grpc.NewClient(r.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return func() error { return err }, func() {}
		}
		hc := healthpb.NewHealthClient(conn)
		return func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			// NOT_SERVING (a draining process) is an answer too.
			_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			return err
		}, func() { conn.Close() }
	})
	loop("udp", 2, func() (func() error, func()) {
		return func() error { return datagramOnce(r.udp) }, func() {}
	})
	loop("websocket", 4, func() (func() error, func()) {
		ws := &wsClient{url: "ws://" + r.api + "/ws"}
		return ws.exchange, ws.close
	})

	if r.wrk {
		first := clients + 1
		clients += wrkConns
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.wrkLoop(ctx, first)
		}()
	}

	// The processes alive, each second.
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.tl.processes(len(r.live()))
			}
		}
	}()
	return func() {
		cancel()
		wg.Wait()
	}
}

// lineOnce sends a line on a new connection and reads it back.
func lineOnce(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "soak\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasSuffix(line, "soak\n") {
		return fmt.Errorf("echo said %q", line)
	}
	return nil
}

// datagramOnce sends a datagram and waits for the answer.
func datagramOnce(addr string) error {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.WriteString(c, "soak"); err != nil {
		return err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if !strings.HasSuffix(string(buf[:n]), "soak") {
		return fmt.Errorf("answer %q", buf[:n])
	}
	return nil
}

// wsClient keeps a websocket open and exchanges messages on it; when the
// server goes away (close 1001, a drain) it connects again, which is not
// an error.
type wsClient struct {
	url string
	c   *websocket.Conn
}

func (w *wsClient) exchange() error {
	if w.c == nil {
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		c, _, err := d.Dial(w.url, nil)
		if err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, _, err := c.ReadMessage(); err != nil { // the greeting
			c.Close()
			return err
		}
		w.c = c
	}
	w.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	w.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := w.c.WriteMessage(websocket.TextMessage, []byte("soak")); err != nil {
		return w.lost(err)
	}
	_, p, err := w.c.ReadMessage()
	if err != nil {
		return w.lost(err)
	}
	if string(p) != "soak" {
		return w.lost(fmt.Errorf("echo %q", p))
	}
	time.Sleep(20 * time.Millisecond)
	return nil
}

// errAgain is an exchange that did not happen and is no error: the
// server went away (close 1001) before the echo, and the message goes
// again on a new connection.
var errAgain = errors.New("again")

// lost ends the connection.
func (w *wsClient) lost(err error) error {
	w.c.Close()
	w.c = nil
	if websocket.IsCloseError(err, websocket.CloseGoingAway) {
		return errAgain
	}
	return err
}

func (w *wsClient) close() {
	if w.c != nil {
		w.c.Close()
	}
}
