package server

import "testing"

func TestGoRunBinary(t *testing.T) {
	for exe, want := range map[string]bool{
		"/tmp/go-build3202044256/b001/exe/app": true,
		"/root/.cache/go-build/9e/9efba1e4c43a4018485d005d2c0be2863fb9fede878040f2f2349569b0024c25-d/app":    true,
		"/home/u/.cache/custom/0a/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-d/x": true,
		"/usr/local/bin/app":             false,
		"/srv/releases/v42/app":          false,
		"/tmp/exe/app":                   false,
		"/root/.cache/go-build/9e/abc/x": false,
		"/c/9e/" + "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef-d/x":  false, // upper case
		"/c/9e/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde-d/x":   false, // 63 digits
		"/c/9e/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdefd/x":   false, // no -d
		"/c/9e/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-e/x":  false,
		"/c/9g/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-d/x":  false, // shard not hex
		"/c/9e0/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef-d/x": false,
	} {
		if got := goRunBinary(exe); got != want {
			t.Errorf("goRunBinary(%q) = %v, want %v", exe, got, want)
		}
	}
}
