//go:build linux

package handoff_test

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The Dockerfile's build (CGO_ENABLED=0) makes a binary that a static base
// image can run: no dynamic loader, no shared library.
func TestStaticBuild(t *testing.T) {
	out := filepath.Join(t.TempDir(), "app")
	cmd := exec.Command("go", "build", "-o", out, "./examples/readme")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Fatalf("the binary has a %v program header: it is not static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) != 0 {
		t.Fatalf("the binary needs %v", libs)
	}
}
