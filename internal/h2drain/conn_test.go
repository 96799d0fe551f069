package h2drain

import (
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// The soft GOAWAY is written between the server's frames, and a client
// that is slow to read never makes it fail: a write cut by a deadline
// would leave a TLS connection unusable, with every stream on it lost.
func TestSoftGoAwayWaitsForASlowReader(t *testing.T) {
	server, client := net.Pipe() // every write waits for its reader
	defer client.Close()
	c := newConn(server, nil, nil)
	defer c.Close()

	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(frames(100, 200, 300))
		wrote <- err
	}()
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		c.softGoAway()
	}()
	// Read nothing for longer than any write deadline would have allowed.
	time.Sleep(1500 * time.Millisecond)

	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	fr := http2.NewFramer(nil, client)
	var data []int
	goaway, ping := false, false
	for len(data) < 3 || !goaway || !ping {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %v data frames, goaway %v, ping %v: %v", data, goaway, ping, err)
		}
		switch f := f.(type) {
		case *http2.DataFrame:
			data = append(data, len(f.Data()))
		case *http2.GoAwayFrame:
			goaway = f.LastStreamID == 1<<31-1
		case *http2.PingFrame:
			ping = f.Data == pingData
		}
	}
	if data[0] != 100 || data[1] != 200 || data[2] != 300 {
		t.Fatalf("data frames %v, want [100 200 300]", data)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("the server's write failed: %v", err)
	}
	<-injected
	if c.werr != nil {
		t.Fatalf("injection failed: %v", c.werr)
	}
}

// A connection whose injection cannot be written (the peer is gone) fails
// every later write instead of sending a broken stream of frames.
func TestFailedInjectionFailsTheConnection(t *testing.T) {
	server, client := net.Pipe()
	c := newConn(server, nil, nil)
	client.Close()
	c.softGoAway()
	if c.werr == nil {
		t.Fatal("injection into a closed pipe reported no error")
	}
	if _, err := c.Write(frames(1)); err == nil {
		t.Fatal("a write after a failed injection succeeded")
	}
	if _, err := io.WriteString(c, "x"); err == nil {
		t.Fatal("a second write after a failed injection succeeded")
	}
}
