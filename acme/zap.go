package acme

import (
	"fmt"
	"sort"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/handoff-go/handoff/internal/logx"
)

// newZap is a zap logger (certmagic's) that writes to the server's log,
// from level info up.
func newZap(log logx.Logger) *zap.Logger { return zap.New(zapCore{log: log}) }

type zapCore struct {
	log    logx.Logger
	fields []zapcore.Field
}

func (c zapCore) Enabled(l zapcore.Level) bool { return l >= zapcore.InfoLevel }

func (c zapCore) With(fields []zapcore.Field) zapcore.Core {
	return zapCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c zapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c zapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	var ev *logx.Event
	switch {
	case e.Level >= zapcore.ErrorLevel:
		ev = c.log.Error()
	case e.Level == zapcore.WarnLevel:
		ev = c.log.Warn()
	default:
		ev = c.log.Info()
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := enc.Fields[k].(type) {
		case string:
			ev = ev.Str(k, v)
		case bool:
			ev = ev.Bool(k, v)
		case int64:
			ev = ev.Int64(k, v)
		case int:
			ev = ev.Int(k, v)
		case time.Duration:
			ev = ev.Dur(k, v)
		case time.Time:
			ev = ev.Time(k, v)
		default:
			ev = ev.Str(k, fmt.Sprint(v))
		}
	}
	ev.Msg(e.Message)
	return nil
}

func (c zapCore) Sync() error { return nil }
