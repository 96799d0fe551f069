package server

import (
	"errors"
	"fmt"
)

// errStoppedEarly: a handler or server of the program returned while the
// listener was still meant to serve.
var errStoppedEarly = errors.New("returned before the server drained")

// servePacket runs the packet handler on the socket until it returns.
func (svc *service) servePacket() error {
	svc.active.Add(1)
	defer svc.handlerDone()
	svc.spec.Packet(svc.drainCtx, svc.pc)
	if svc.drainCtx.Err() == nil {
		return fmt.Errorf("the packet handler %w", errStoppedEarly)
	}
	return nil
}

// serveOwn runs the program's own server on the tracked listener. Once
// the drain has started, whatever serve returns is the shutdown's doing.
func (svc *service) serveOwn() error {
	svc.active.Add(1)
	defer svc.handlerDone()
	err := svc.spec.Serve(svc.ln)
	switch {
	case svc.drainCtx.Err() != nil:
		return nil
	case err == nil:
		return fmt.Errorf("serve %w", errStoppedEarly)
	}
	return err
}

// shutdownOwn calls the program's shutdown, with a context that hammer
// time cancels, on a goroutine the drain counts until it returns.
func (svc *service) shutdownOwn() {
	svc.active.Add(1)
	go func() {
		defer svc.handlerDone()
		if err := svc.spec.Shutdown(svc.baseCtx); err != nil && svc.baseCtx.Err() == nil {
			svc.log.Warn().Err(err).Msg("shutdown of the listener's server failed")
		}
		svc.ln.Close()
	}()
}
