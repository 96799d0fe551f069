package hijack_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/handoff-go/handoff/hijack"
)

// A handler outside a handoff server gets a nil channel: the select never
// chooses it.
func ExampleNotify() {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hijack.Notify(r.Context()):
			fmt.Println("draining")
		default:
			fmt.Println("serving")
		}
	})
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	// Output: serving
}
