//go:build !unix

package tlsreload

import "errors"

func syscallMkfifo(string) error { return errors.New("no FIFOs on this platform") }
