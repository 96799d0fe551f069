package sdnotify

import (
	"net"
	"path/filepath"
	"testing"
	"time"
)

func TestSend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.sock")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := New(path).Send("READY=1", "STATUS=serving"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "READY=1\nSTATUS=serving" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if err := (Notifier{}).Send("READY=1"); err != nil || (Notifier{}).Enabled() {
		t.Fatalf("the zero Notifier sent, or says it is enabled: %v", err)
	}
	if err := New(filepath.Join(t.TempDir(), "none")).Send("READY=1"); err == nil {
		t.Fatal("sending to a missing socket succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tt := range []struct {
		usec, pid string
		want      time.Duration
		wantErr   bool
	}{
		{"", "", 0, false},
		{"2000000", "", time.Second, false},
		{"2000000", "42", time.Second, false},
		{"2000000", "43", 0, false},
		{"x", "", 0, true},
		{"-5", "", 0, true},
	} {
		got, err := WatchdogInterval(tt.usec, tt.pid, 42)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("WatchdogInterval(%q, %q) = %v, %v; want %v, error %v", tt.usec, tt.pid, got, err, tt.want, tt.wantErr)
		}
	}
}
