package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// The default logger times its lines in UTC whatever the local time zone,
// so that no process loads its zone to log.
func TestDefaultLoggerTimesInUTC(t *testing.T) {
	defer func(l *time.Location) { time.Local = l }(time.Local)
	time.Local = time.FixedZone("UTC+5", 5*3600)
	var buf bytes.Buffer
	before := time.Now()
	l := defaultLogger(&buf)
	l.Info().Int("pid", 7).Msg("serving")
	var line struct {
		Time    string `json:"time"`
		Message string `json:"message"`
		Level   string `json:"level"`
	}
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("%q: %v", buf.String(), err)
	}
	if line.Message != "serving" || line.Level != "info" {
		t.Fatalf("line %q", buf.String())
	}
	if !strings.HasSuffix(line.Time, "Z") {
		t.Fatalf("time %q; want UTC (a Z suffix)", line.Time)
	}
	at, err := time.Parse(time.RFC3339, line.Time)
	if err != nil {
		t.Fatal(err)
	}
	if d := at.Sub(before.Truncate(time.Second)); d < 0 || d > time.Minute {
		t.Fatalf("time %v is %v after the call began", at, d)
	}
}
