package logx

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func write(l Logger) {
	l = l.WithInt("pid", 42).WithStr("listener", "api")
	l.Info().Str("addr", "127.0.0.1:1").Int("generation", 2).Dur("took", 1500*time.Millisecond).
		Bool("tls", true).Strs("names", []string{"a", "b"}).Err(errors.New("boom")).AnErr("status", nil).Msg("hello")
	l.Debug().Msg("quiet")
	l.Warn().Uint64("fd", 3).Int64("n", -1).Time("at", time.Unix(0, 0).UTC()).Msg("careful")
}

// The same calls give the same level, message and attributes in both.
func TestSameRecordsInBoth(t *testing.T) {
	var zb, sb bytes.Buffer
	write(Zerolog(zerolog.New(&zb).Level(zerolog.InfoLevel)))
	write(Slog(slog.New(slog.NewJSONHandler(&sb, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	zl := strings.Split(strings.TrimSpace(zb.String()), "\n")
	sl := strings.Split(strings.TrimSpace(sb.String()), "\n")
	if len(zl) != 2 || len(sl) != 2 {
		t.Fatalf("zerolog wrote %d records, slog %d; want 2 each (debug is off):\n%s\n%s", len(zl), len(sl), zb.String(), sb.String())
	}
	for i := range zl {
		var z, s map[string]any
		if err := json.Unmarshal([]byte(zl[i]), &z); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(sl[i]), &s); err != nil {
			t.Fatal(err)
		}
		if z["message"] != s["msg"] || !strings.EqualFold(z["level"].(string), s["level"].(string)) &&
			!(z["level"] == "warn" && s["level"] == "WARN") {
			t.Errorf("record %d: zerolog %v, slog %v", i, z, s)
		}
		for k, v := range z {
			if k == "message" || k == "level" || k == "took" || k == "at" {
				continue
			}
			if sv, ok := s[k]; !ok || !equalJSON(v, sv) {
				t.Errorf("record %d: %s is %v in zerolog, %v in slog", i, k, v, sv)
			}
		}
	}
	var s map[string]any
	json.Unmarshal([]byte(sl[0]), &s)
	if s["took"] != float64(1500*time.Millisecond) {
		t.Errorf("took = %v in slog, want a duration of 1.5s", s["took"])
	}
	if _, ok := s["status"]; ok {
		t.Error("a nil error was written")
	}
}

func equalJSON(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestZeroValueWritesNothing(t *testing.T) {
	var l Logger
	l.WithStr("k", "v").Info().Str("a", "b").Msg("nothing") // must not panic
}
