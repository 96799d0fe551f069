package main

import (
	"encoding/json"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// CountRequest asks for N messages, one every DelayMS milliseconds.
type CountRequest struct {
	N       int `json:"n"`
	DelayMS int `json:"delay_ms"`
}

// CountReply is one of them: its index and the pid that sent it.
type CountReply struct {
	I   int `json:"i"`
	PID int `json:"pid"`
}

// jsonCodec marshals messages as JSON, so Count needs no generated code.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return "json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// CountMethod is the full name of the method.
const CountMethod = "/handoff.demo.Counter/Count"

func registerCounter(gs *grpc.Server) {
	gs.RegisterService(&grpc.ServiceDesc{
		ServiceName: "handoff.demo.Counter",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "Count",
			ServerStreams: true,
			Handler: func(_ any, stream grpc.ServerStream) error {
				var req CountRequest
				if err := stream.RecvMsg(&req); err != nil {
					return err
				}
				for i := range req.N {
					time.Sleep(time.Duration(req.DelayMS) * time.Millisecond)
					if err := stream.SendMsg(&CountReply{I: i, PID: os.Getpid()}); err != nil {
						return err
					}
				}
				return nil
			},
		}},
	}, struct{}{})
}
