//go:build linux

package handoff_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// An HTTP listener on a unix socket serves keep-alive clients through
// restarts without an error; the socket file stays, with its mode, and is
// removed when the service stops for good.
func TestUnixSocketAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "local.sock")
	s := startServer(t, "-unix", path)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("http://unix/pid")
				if err != nil {
					failed.Add(1)
					t.Errorf("GET over the unix socket: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				ok.Add(1)
			}
		}()
	}
	for range 5 {
		s.restart()
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("socket file after a restart: %v, %v; want mode 0600", fi, err)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("%d requests over the unix socket, %d failed", ok.Load(), failed.Load())
	if ok.Load() == 0 {
		t.Fatal("no request was answered")
	}
	last := s.current()
	s.signal(last, syscall.SIGTERM)
	if code := s.waitExit(last, 30*time.Second); code != 0 {
		t.Fatalf("exit status %d", code)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the socket file outlived the service: %v", err)
	}
}

// A client sending numbered datagrams to a UDP listener through 20
// restarts gets an answer to every one; answers come from more than one
// process.
func TestUDPAcrossRestarts(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpAddr := pc.LocalAddr().String()
	pc.Close()
	s := startServer(t, "-udp", udpAddr)
	c, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stop := make(chan struct{})
	type result struct {
		sent, lost int
		pids       map[string]bool
	}
	done := make(chan result, 1)
	go func() {
		r := result{pids: map[string]bool{}}
		buf := make([]byte, 2048)
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			msg := strconv.Itoa(i)
			c.Write([]byte(msg))
			r.sent++
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := c.Read(buf)
			pid, got, _ := strings.Cut(string(buf[:max(n, 0)]), " ")
			if err != nil || got != msg {
				r.lost++
				continue
			}
			r.pids[pid] = true
		}
	}()
	for range 20 {
		s.restart()
	}
	close(stop)
	r := <-done
	t.Logf("%d datagrams through 20 restarts, %d unanswered, answered by %d processes", r.sent, r.lost, len(r.pids))
	if r.lost != 0 || r.sent < 20 || len(r.pids) < 2 {
		t.Fatalf("%d of %d datagrams unanswered, %d processes answered", r.lost, r.sent, len(r.pids))
	}
}

// A server of the program's own, run through listeners.Serve, is drained
// by its own shutdown at each restart: clients that keep sending lines see
// every line answered.
func TestServeKindAcrossRestarts(t *testing.T) {
	lines := freeAddr(t)
	s := startServer(t, "-lines", lines)
	stop := make(chan struct{})
	var sent, lost atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			var br *bufio.Reader
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", lines, 5*time.Second); err != nil {
						lost.Add(1)
						t.Errorf("dial: %v", err)
						return
					}
					defer c.Close()
					br = bufio.NewReader(c)
				}
				line := fmt.Sprintf("line %d\n", i)
				sent.Add(1)
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.WriteString(c, line); err != nil {
					c = nil // the server closed after its last answer: reconnect
					i--
					sent.Add(-1)
					continue
				}
				got, err := br.ReadString('\n')
				if err != nil {
					// Closed before this line was read: not sent after all.
					c = nil
					i--
					sent.Add(-1)
					continue
				}
				if !strings.HasSuffix(got, " "+line) {
					lost.Add(1)
					t.Errorf("line %q answered %q", line, got)
				}
			}
		}()
	}
	for range 10 {
		s.restart()
	}
	close(stop)
	wg.Wait()
	t.Logf("%d lines through 10 restarts, %d lost", sent.Load(), lost.Load())
	if lost.Load() != 0 || sent.Load() == 0 {
		t.Fatalf("%d of %d lines lost", lost.Load(), sent.Load())
	}
}

// A new process whose own server cannot serve (serve fails at once) never
// reports ready: the restart fails and the old process serves on.
func TestServeKindFailingChild(t *testing.T) {
	s := startServer(t, "-lines", freeAddr(t), "-ready-timeout", "20s")
	s.setMode("lines-fail")
	s.signal(s.firstPID, syscall.SIGHUP)
	var failed map[string]any
	waitFor(t, 15*time.Second, "the restart to fail", func() bool {
		failed = s.logged(s.firstPID, "restart failed; still serving")
		return failed != nil
	})
	if pid, err := fetch(s.api, "/pid"); err != nil || pid != strconv.Itoa(s.firstPID) {
		t.Fatalf("after the failed restart /pid = %q, %v", pid, err)
	}
}

// A file the program opened once is handed to every new process by name
// (PassFile, InheritedFile): after its path is removed, each process of
// three restarts still writes to the same open file.
func TestPassedFileAcrossRestarts(t *testing.T) {
	note := filepath.Join(t.TempDir(), "note")
	s := startServer(t, "-notefile", note)
	if _, err := fetch(s.api, "/note"); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(note); err != nil {
		t.Fatal(err)
	}
	pids := []int{s.firstPID}
	var body string
	for range 3 {
		pids = append(pids, s.restart())
		var err error
		if body, err = fetch(s.api, "/note"); err != nil {
			t.Fatal(err)
		}
	}
	var want []string
	for _, p := range pids {
		want = append(want, strconv.Itoa(p))
	}
	if got := strings.Fields(body); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("the passed file holds %q, want the pids %v in order", got, want)
	}
}
