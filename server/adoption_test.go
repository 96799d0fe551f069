//go:build unix

package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/handoff-go/handoff/internal/testlog"
	"github.com/handoff-go/handoff/listeners"
)

// Cancelling ServeContext's context drains as SIGTERM does, shutdown delay
// included, and ServeContext returns nil once drained.
func TestServeContext(t *testing.T) {
	for _, delay := range []time.Duration{0, 300 * time.Millisecond} {
		s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
		if delay > 0 {
			s = newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)), WithShutdownDelay(delay))
		}
		s.Listen("api", "127.0.0.1:0")
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() { served <- s.ServeContext(ctx) }()
		<-s.Serving()
		start := time.Now()
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Fatalf("ServeContext = %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("ServeContext did not return after cancel")
		}
		if took := time.Since(start); took < delay {
			t.Fatalf("drained after %v, before the %v shutdown delay", took, delay)
		}
	}
	// A context done before Serve: nothing is served, no error.
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	s.Listen("api", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.ServeContext(ctx); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("ServeContext with a done context = %v", err)
	}
}

// With WithSlog every record goes to slog, with its level and attributes,
// and nothing to zerolog.
func TestWithSlog(t *testing.T) {
	var out testlog.Buffer
	l := slog.New(slog.NewJSONHandler(&out, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := newFakeOS(t)
	s, served := startServer(t, f, WithSlog(l))
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := waitServed(t, served); err != nil {
		t.Fatal(err)
	}
	seen := map[string]map[string]any{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("not a slog JSON record: %q", line)
		}
		if r["pid"] != float64(os.Getpid()) {
			t.Errorf("record without this pid: %v", r)
		}
		seen[r["msg"].(string)] = r
	}
	for msg, attrs := range map[string][]string{
		"listening":     {"listener", "addr", "kind"},
		"serving":       {"listeners", "generation"},
		"child started": {"child", "generation"},
		"child ready":   {"child", "took"},
		"drained":       {"took", "hammered"},
	} {
		r, ok := seen[msg]
		if !ok {
			t.Errorf("no %q record in:\n%s", msg, out.String())
			continue
		}
		for _, a := range attrs {
			if _, ok := r[a]; !ok {
				t.Errorf("%q record lacks %s: %v", msg, a, r)
			}
		}
	}
	if r := seen["child ready"]; r != nil {
		if _, isNumber := r["took"].(float64); !isNumber || r["level"] != "INFO" {
			t.Errorf("child ready: took %v (want a duration), level %v", r["took"], r["level"])
		}
	}
}

func TestNewOptionsRejectBadInput(t *testing.T) {
	notExec := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	for _, tt := range []struct {
		opt  Option
		want string
	}{
		{WithExecutable(""), "WithExecutable needs a path"},
		{WithExecutable(notExec), "not executable"},
		{WithExecutable("/nonexistent/app"), "no such file"},
		{WithExecutable(t.TempDir()), "not a regular file"},
		{WithChildEnv(nil), "WithChildEnv needs a function"},
		{WithSlog(nil), "WithSlog needs a logger"},
	} {
		s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)), tt.opt)
		s.Listen("api", "127.0.0.1:0")
		if err := s.Serve(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Serve = %v, want an error with %q", err, tt.want)
		}
	}
}

// A program whose WithExecutable path is gone at restart time fails the
// restart and serves on.
func TestRestartWithAMissingExecutable(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "app")
	os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755)
	f := newFakeOS(t)
	s, _ := startServer(t, f, WithExecutable(exe))
	os.Remove(exe)
	if err := s.Restart(); !errors.Is(err, ErrRestartFailed) || !strings.Contains(err.Error(), exe) {
		t.Fatalf("Restart = %v, want a failure naming %s", err, exe)
	}
	if st := get(t, s); st != "200 OK" {
		t.Fatalf("after the failed restart: %s", st)
	}
}

func TestPassFileRejectsBadInput(t *testing.T) {
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}), WithLogger(testLogger(t)))
	if err := s.PassFile("a,b", os.Stdin); err == nil || !strings.Contains(err.Error(), "invalid name") {
		t.Errorf("PassFile with a bad name = %v", err)
	}
	if err := s.PassFile("note", nil); err == nil || !strings.Contains(err.Error(), "nil file") {
		t.Errorf("PassFile(nil) = %v", err)
	}
	if f := s.InheritedFile("note"); f != nil {
		t.Errorf("a first process inherited %v", f)
	}
}

// A served certificate with less than 30 days left is reported once, at
// start; with less than 7, again.
func TestCertificateExpiryWarning(t *testing.T) {
	ca, _, _ := certFiles(t)
	soon, err := ca.Leaf("soon", []string{"127.0.0.1"}, time.Now().Add(-time.Hour), time.Now().Add(10*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := soon.Write(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var out testlog.Buffer
	s := newServer(newFakeOS(t).osx(), WithSignals(silentSource{}),
		WithSlog(slog.New(slog.NewJSONHandler(&out, nil))))
	s.Listen("api", "127.0.0.1:0", listeners.TLSFiles(cert, key))
	served := serveInBackground(t, s)
	waitUntil(t, "the expiry warning", func() bool { return strings.Contains(out.String(), "certificate expires soon") })
	svc := s.services[0]
	svc.warnExpiry(time.Now())                         // the same threshold: no second warning
	svc.warnExpiry(time.Now().Add(5 * 24 * time.Hour)) // under 7 days: a second one
	s.Shutdown(context.Background())
	<-served
	if n := strings.Count(out.String(), "certificate expires soon"); n != 2 {
		t.Fatalf("%d expiry warnings, want 2:\n%s", n, out.String())
	}
}
