package tools

import (
	"context"
	"log/slog"
)

// quietHandler hands mcp-go's transport logs to the Manager's logger at
// Debug level: the library logs routine events ("listening to server
// forever") at Info and retries of a dead server's stream every second at
// Error; what matters to an operator is reported by this package instead
// (List warnings, Call errors).
type quietHandler struct{ h slog.Handler }

func (q quietHandler) Enabled(ctx context.Context, _ slog.Level) bool {
	return q.h.Enabled(ctx, slog.LevelDebug)
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	r2 := slog.NewRecord(r.Time, slog.LevelDebug, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool { r2.AddAttrs(a); return true })
	return q.h.Handle(ctx, r2)
}

func (q quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{q.h.WithAttrs(as)}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{q.h.WithGroup(name)}
}

// libraryLogger is the logger given to mcp-go for one server.
func (s *session) libraryLogger() *slog.Logger {
	return slog.New(quietHandler{s.log.Handler()}).With("source", "mcp-go")
}
