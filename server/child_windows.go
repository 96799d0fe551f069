//go:build windows

package server

import (
	"os"

	"github.com/handoff-go/handoff/internal/listen"
)

func readyPipe(uintptr) (*os.File, error) { return nil, listen.ErrUnsupported }

func loadInheritedFiles() map[string]*os.File { return map[string]*os.File{} }
