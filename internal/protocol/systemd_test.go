package protocol

import (
	"errors"
	"slices"
	"testing"
)

func TestParseActivation(t *testing.T) {
	tests := []struct {
		name            string
		pid, fds, names string
		ok              bool
		wantErr         bool
		want            []string
	}{
		{name: "not activated", pid: "", fds: "2", ok: false},
		{name: "another process", pid: "999", fds: "2", ok: false},
		{name: "unnamed", pid: "42", fds: "2", ok: true, want: []string{"", ""}},
		{name: "named", pid: "42", fds: "2", names: "api:admin", ok: true, want: []string{"api", "admin"}},
		// A socket unit's default name counts as none; any other name stays,
		// even one no listener can have, so that it is never given to another.
		{name: "default and odd names", pid: "42", fds: "3", names: "my.socket:has space:unknown", ok: true, want: []string{"", "has space", ""}},
		{name: "zero fds", pid: "42", fds: "0", ok: true, want: []string{}},
		{name: "pid not a number", pid: "abc", fds: "2", wantErr: true},
		{name: "fds not a number", pid: "42", fds: "two", wantErr: true},
		{name: "fds negative", pid: "42", fds: "-1", wantErr: true},
		{name: "fds missing", pid: "42", fds: "", wantErr: true},
		{name: "fds too many", pid: "42", fds: "100000", wantErr: true},
		{name: "more names than fds", pid: "42", fds: "1", names: "api:admin", wantErr: true},
		{name: "fewer names than fds", pid: "42", fds: "3", names: "api:admin", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok, err := ParseActivation(42, tt.pid, tt.fds, tt.names)
			if tt.wantErr {
				if !errors.Is(err, ErrActivation) {
					t.Fatalf("err = %v, want ErrActivation", err)
				}
				return
			}
			if err != nil || ok != tt.ok {
				t.Fatalf("ok %v, err %v; want ok %v", ok, err, tt.ok)
			}
			if !ok {
				return
			}
			got := make([]string, a.Len())
			for i := range got {
				got[i] = a.Name(i)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("names %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAssign(t *testing.T) {
	declared := []string{"api", "admin", "echo"}
	tests := []struct {
		fdNames string
		fds     string
		want    []string
	}{
		{"", "3", []string{"api", "admin", "echo"}},
		{"", "2", []string{"api", "admin"}},
		{"echo:api", "2", []string{"echo", "api"}},
		// Named sockets go to their listener or to none; only unnamed
		// ones (systemd's defaults among them) fall back to order.
		{"admin:unknown:x", "3", []string{"admin", "api", ""}},
		{"metrics:api", "2", []string{"", "api"}},
		{"app.socket:stored", "2", []string{"api", "admin"}},
		{"", "4", []string{"api", "admin", "echo", ""}},
		{"api:api", "2", []string{"api", ""}},
	}
	for _, tt := range tests {
		a, ok, err := ParseActivation(1, "1", tt.fds, tt.fdNames)
		if err != nil || !ok {
			t.Fatal(err)
		}
		if got := a.Assign(declared); !slices.Equal(got, tt.want) {
			t.Errorf("Assign with %q = %q, want %q", tt.fdNames, got, tt.want)
		}
	}
}

func FuzzParseActivation(f *testing.F) {
	f.Add("42", "2", "api:admin")
	f.Add("42", "1", "")
	f.Add("x", "-1", "::")
	f.Fuzz(func(t *testing.T, pid, fds, names string) {
		a, ok, err := ParseActivation(42, pid, fds, names)
		if err != nil || !ok {
			return
		}
		if a.Len() > MaxNames {
			t.Fatalf("%d descriptors accepted", a.Len())
		}
		got := a.Assign([]string{"api", "admin"})
		seen := map[string]bool{}
		for i, name := range got {
			if name == "" {
				continue
			}
			if seen[name] {
				t.Fatalf("listener %q assigned twice: %q", name, got)
			}
			seen[name] = true
			if n := a.Name(i); n != "" && n != name {
				t.Fatalf("descriptor named %q given to %q", n, name)
			}
		}
	})
}
