// Package logx is the server's logger: the fluent calls of zerolog, sent
// either to a zerolog.Logger or to a log/slog Logger with the same level,
// message and attributes, so the server's code is written once for both.
package logx

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/rs/zerolog"
)

// Logger writes to zerolog or to slog. The zero value writes nothing.
type Logger struct {
	z *zerolog.Logger
	s *slog.Logger
}

// Zerolog returns a Logger writing to l.
func Zerolog(l zerolog.Logger) Logger { return Logger{z: &l} }

// Slog returns a Logger writing to l.
func Slog(l *slog.Logger) Logger { return Logger{s: l} }

// WithStr returns a Logger that adds the attribute k=v to every record.
func (l Logger) WithStr(k, v string) Logger {
	switch {
	case l.z != nil:
		z := l.z.With().Str(k, v).Logger()
		return Logger{z: &z}
	case l.s != nil:
		return Logger{s: l.s.With(slog.String(k, v))}
	}
	return l
}

// WithInt returns a Logger that adds the attribute k=v to every record.
func (l Logger) WithInt(k string, v int) Logger {
	switch {
	case l.z != nil:
		z := l.z.With().Int(k, v).Logger()
		return Logger{z: &z}
	case l.s != nil:
		return Logger{s: l.s.With(slog.Int(k, v))}
	}
	return l
}

// Debug starts a record at debug level; nil when that level is off.
func (l Logger) Debug() *Event { return l.event(zerolog.DebugLevel, slog.LevelDebug) }

// Info starts a record at info level; nil when that level is off.
func (l Logger) Info() *Event { return l.event(zerolog.InfoLevel, slog.LevelInfo) }

// Warn starts a record at warning level; nil when that level is off.
func (l Logger) Warn() *Event { return l.event(zerolog.WarnLevel, slog.LevelWarn) }

// Error starts a record at error level; nil when that level is off.
func (l Logger) Error() *Event { return l.event(zerolog.ErrorLevel, slog.LevelError) }

func (l Logger) event(zl zerolog.Level, sl slog.Level) *Event {
	switch {
	case l.z != nil:
		if ze := l.z.WithLevel(zl); ze != nil {
			return &Event{z: ze}
		}
	case l.s != nil:
		if l.s.Enabled(context.Background(), sl) {
			return &Event{s: l.s, level: sl}
		}
	}
	return nil
}

// Event is one record being built. Its methods do nothing on a nil Event.
type Event struct {
	z     *zerolog.Event
	s     *slog.Logger
	level slog.Level
	attrs []slog.Attr
}

func (e *Event) add(a slog.Attr) *Event {
	e.attrs = append(e.attrs, a)
	return e
}

// Str adds a string.
func (e *Event) Str(k, v string) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Str(k, v)
		return e
	}
	return e.add(slog.String(k, v))
}

// Stringer adds v.String(), or null when v is nil.
func (e *Event) Stringer(k string, v fmt.Stringer) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Stringer(k, v)
		return e
	case v == nil:
		return e.add(slog.Any(k, nil))
	}
	return e.add(slog.String(k, v.String()))
}

// Strs adds a list of strings.
func (e *Event) Strs(k string, v []string) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Strs(k, v)
		return e
	}
	return e.add(slog.Any(k, v))
}

// Int adds an integer.
func (e *Event) Int(k string, v int) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Int(k, v)
		return e
	}
	return e.add(slog.Int(k, v))
}

// Int64 adds an integer.
func (e *Event) Int64(k string, v int64) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Int64(k, v)
		return e
	}
	return e.add(slog.Int64(k, v))
}

// Uint64 adds an unsigned integer.
func (e *Event) Uint64(k string, v uint64) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Uint64(k, v)
		return e
	}
	return e.add(slog.Uint64(k, v))
}

// Bool adds a boolean.
func (e *Event) Bool(k string, v bool) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Bool(k, v)
		return e
	}
	return e.add(slog.Bool(k, v))
}

// Dur adds a duration (zerolog writes it in milliseconds).
func (e *Event) Dur(k string, v time.Duration) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Dur(k, v)
		return e
	}
	return e.add(slog.Duration(k, v))
}

// Time adds a time.
func (e *Event) Time(k string, v time.Time) *Event {
	switch {
	case e == nil:
		return nil
	case e.z != nil:
		e.z.Time(k, v)
		return e
	}
	return e.add(slog.Time(k, v))
}

// Err adds err under the key "error"; a nil err adds nothing.
func (e *Event) Err(err error) *Event { return e.AnErr("error", err) }

// AnErr adds err under k; a nil err adds nothing.
func (e *Event) AnErr(k string, err error) *Event {
	switch {
	case e == nil || err == nil:
		return e
	case e.z != nil:
		e.z.AnErr(k, err)
		return e
	}
	return e.add(slog.String(k, err.Error()))
}

// Msg writes the record with msg as its message.
func (e *Event) Msg(msg string) {
	switch {
	case e == nil:
		return
	case e.z != nil:
		e.z.Msg(msg)
		return
	}
	var pcs [1]uintptr
	runtime.Callers(2, pcs[:]) // the caller of Msg, for slog's AddSource
	r := slog.NewRecord(time.Now(), e.level, msg, pcs[0])
	r.AddAttrs(e.attrs...)
	e.s.Handler().Handle(context.Background(), r)
}
