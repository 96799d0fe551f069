//go:build !linux

package listen

import "net"

// pending is not measured on this platform; the read counter and the grace
// period alone decide.
func pending(net.Conn) int { return 0 }
