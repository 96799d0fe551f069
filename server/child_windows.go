//go:build windows

package server

import (
	"os"

	"github.com/handoff-go/handoff/listeners"
)

func readyPipe(uintptr) (*os.File, error) { return nil, listeners.ErrUnsupported }
