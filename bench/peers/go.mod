module handoffbench

go 1.26.0

require (
	github.com/cloudflare/tableflip v1.2.3
	github.com/facebookgo/grace v0.0.0
	github.com/fvbock/endless v0.0.0
	github.com/handoff-go/handoff v0.0.0
)

require (
	github.com/facebookgo/clock v0.0.0-00010101000000-000000000000 // indirect
	github.com/facebookgo/httpdown v0.0.0-00010101000000-000000000000 // indirect
	github.com/facebookgo/stats v0.0.0-00010101000000-000000000000 // indirect
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/rs/zerolog v1.35.1 // indirect
	golang.org/x/sys v0.49.0 // indirect
)

// The peers are not served by the Go module proxy: build.sh copies
// checkouts of them into src/ (see README.md).
replace (
	github.com/cloudflare/tableflip => ./src/tableflip
	github.com/facebookgo/clock => ./src/clock
	github.com/facebookgo/grace => ./src/grace
	github.com/facebookgo/httpdown => ./src/httpdown
	github.com/facebookgo/stats => ./src/stats
	github.com/fvbock/endless => ./src/endless
	// handoff itself, from this checkout.
	github.com/handoff-go/handoff => ../..
)
