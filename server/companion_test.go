package server

import (
	"bytes"
	"testing"

	"github.com/handoff-go/handoff/internal/listen"
)

// TestFamilyForChild: a restart passes the family secret a process has,
// makes one only when a companion needs it, and passes the same one at
// every restart.
func TestFamilyForChild(t *testing.T) {
	s := New()
	s.decls = append(s.decls, decl{name: "api", spec: &listen.Spec{}})
	if fam := s.familyForChild(); fam != nil {
		t.Fatalf("no companion, no inherited secret: passed %x", fam)
	}
	inherited := bytes.Repeat([]byte{7}, familyLen)
	s.family = inherited
	if fam := s.familyForChild(); !bytes.Equal(fam, inherited) {
		t.Fatalf("passed %x, want the inherited %x", fam, inherited)
	}

	s = New()
	s.decls = append(s.decls, decl{name: "api", spec: &listen.Spec{Companion: &listen.Companion{Suffix: "quic"}}}) // HTTPS with HTTP/3 beside it
	first := s.familyForChild()
	if len(first) != familyLen {
		t.Fatalf("a companion's process passed %x, want %d bytes", first, familyLen)
	}
	if again := s.familyForChild(); !bytes.Equal(again, first) {
		t.Fatalf("second restart passed %x, first %x", again, first)
	}
}
