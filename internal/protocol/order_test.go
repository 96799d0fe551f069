package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	long := strings.Repeat("a", MaxNameLen)
	tests := []struct {
		in      string
		want    []string
		wantErr error
	}{
		{in: "api", want: []string{"api"}},
		{in: "api,admin,echo", want: []string{"api", "admin", "echo"}},
		{in: "a.b_c-D9", want: []string{"a.b_c-D9"}},
		{in: long, want: []string{long}},
		{in: "", wantErr: ErrEmpty},
		{in: ",", wantErr: ErrEmptyName},
		{in: "api,,admin", wantErr: ErrEmptyName},
		{in: "api,", wantErr: ErrEmptyName},
		{in: ",api", wantErr: ErrEmptyName},
		{in: "api,api", wantErr: ErrDuplicate},
		{in: "a p i", wantErr: ErrBadName},
		{in: "api;rm", wantErr: ErrBadName},
		{in: "api\n", wantErr: ErrBadName},
		{in: "ünï", wantErr: ErrBadName},
		{in: "api:443", wantErr: ErrBadName},
		{in: long + "a", wantErr: ErrBadName},
		{in: strings.Repeat("x,", MaxNames) + "x", wantErr: ErrTooMany},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := Parse(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse(%q) error = %v, want %v", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			got := m.Names()
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("Parse(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if m.String() != tt.in {
				t.Fatalf("String() = %q, want %q", m.String(), tt.in)
			}
		})
	}
}

func TestManifestFDs(t *testing.T) {
	m, err := New("api", "admin", "echo")
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"api", "admin", "echo"} {
		fd, ok := m.FD(name)
		if !ok || fd != uintptr(FirstFD+i) {
			t.Errorf("FD(%q) = %d, %v; want %d", name, fd, ok, FirstFD+i)
		}
	}
	if _, ok := m.FD("nope"); ok {
		t.Error("FD of an unknown name reported ok")
	}
	if got := m.ReadyFD(); got != 6 {
		t.Errorf("ReadyFD() = %d, want 6", got)
	}
	names := m.Names()
	names[0] = "changed"
	if n, _ := m.FD("api"); n != 3 {
		t.Error("Names returned the manifest's own slice")
	}
	var zero Manifest
	if zero.Len() != 0 || zero.String() != "" || zero.ReadyFD() != FirstFD {
		t.Errorf("zero manifest: len %d, %q, ready %d", zero.Len(), zero.String(), zero.ReadyFD())
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"api", "api,admin", "", ",", "a,,b", "a,a", "x y", "api,admin,echo,metrics"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			return
		}
		// Whatever parses must round-trip, hold only valid names, no duplicates,
		// and map every name to a distinct descriptor in order.
		if m.String() != s {
			t.Fatalf("round trip: %q became %q", s, m.String())
		}
		again, err := Parse(m.String())
		if err != nil || again.String() != s {
			t.Fatalf("re-parse of %q: %v", s, err)
		}
		seen := map[uintptr]bool{}
		for i, name := range m.Names() {
			if CheckName(name) != nil {
				t.Fatalf("invalid name %q accepted", name)
			}
			fd, ok := m.FD(name)
			if !ok || fd != uintptr(FirstFD+i) || seen[fd] {
				t.Fatalf("name %q at %d maps to fd %d (ok %v)", name, i, fd, ok)
			}
			seen[fd] = true
		}
	})
}
