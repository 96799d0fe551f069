//go:build !linux

package tlsreload

// notifier: without inotify, Watch polls only.
func notifier([]string) (<-chan struct{}, func()) { return nil, func() {} }
