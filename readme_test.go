package handoff_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// trimmed is text's lines without their leading and trailing blanks, and
// without empty lines.
func trimmed(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// Every Go block of the README is a piece of examples/readme/main.go, which
// CI builds and vets: the blocks compile as written.
func TestREADMECodeCompiles(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("examples/readme/main.go")
	if err != nil {
		t.Fatal(err)
	}
	pieces := map[string][]string{}
	for _, m := range regexp.MustCompile(`(?s)// README: (\w+)\n(.*?)// README: end`).FindAllStringSubmatch(string(src), -1) {
		pieces[m[1]] = trimmed(m[2])
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("no Go block in the README")
	}
	for _, b := range blocks {
		lines := trimmed(b[1])
		found := false
		for _, p := range pieces {
			if strings.Join(p, "\n") == strings.Join(lines, "\n") {
				found = true
			}
		}
		if !found {
			t.Errorf("this README block is not a piece of examples/readme/main.go:\n%s", b[1])
		}
	}
}
