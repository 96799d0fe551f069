//go:build !unix

package tlsreload

const syscallNonblock = 0
