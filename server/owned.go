package server

// goOwned runs fn on a goroutine and returns the func that stops it:
// closing the channel fn receives, then waiting for fn to return.
func goOwned(fn func(done <-chan struct{})) (stop func()) {
	done := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		fn(done)
	}()
	return func() {
		close(done)
		<-exited
	}
}
