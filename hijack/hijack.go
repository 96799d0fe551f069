// Package hijack tells the handlers of hijacked connections (websockets,
// CONNECT tunnels, anything an HTTP handler took over with Hijack) that the
// server is draining, so that they can say goodbye.
//
// net/http forgets a connection the moment it is hijacked. A handoff
// server does not: it counts it, waits for it during a drain, and closes
// it at hammer time if it is still open. What the handler must do is
// notice the drain and end the conversation, for a websocket with a close
// frame of code 1001, "going away":
//
//	select {
//	case <-hijack.Notify(r.Context()):
//		ws.WriteControl(websocket.CloseMessage,
//			websocket.FormatCloseMessage(websocket.CloseGoingAway, "restarting"), deadline)
//		return
//	case msg := <-incoming:
//		…
//	}
//
// Server.RegisterOnShutdown gives the same news as a callback.
package hijack

import (
	"context"

	"github.com/handoff-go/handoff/internal/hijack"
)

// Notify returns a channel that is closed when the server that received
// the request whose context is ctx starts to drain: after a handoff to a
// new process, or on shutdown. Without such a server (ctx does not come
// from a request it serves) it returns nil, a channel that never becomes
// ready in a select.
func Notify(ctx context.Context) <-chan struct{} { return hijack.Notify(ctx) }
