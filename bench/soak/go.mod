module github.com/handoff-go/handoff/bench/soak

go 1.26.0

replace github.com/handoff-go/handoff => ../..

require (
	github.com/gorilla/websocket v1.5.3
	github.com/handoff-go/handoff v0.0.0-00010101000000-000000000000
	github.com/quic-go/quic-go v0.65.0
	github.com/rs/zerolog v1.35.1
	golang.org/x/sys v0.50.0
	google.golang.org/grpc v1.85.0
)

require (
	github.com/mattn/go-colorable v0.1.14 // indirect
	github.com/mattn/go-isatty v0.0.20 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/text v0.43.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
