package db

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"

	"github.com/jmoiron/sqlx"
)

// lazyStmt is a statement prepared on first use and then reused, for queries on the hot path
// of every run (the endpoint lookup by slug): SQLite otherwise parses and plans the SQL on
// every call, which the overhead benchmark's CPU profile showed at about a tenth of the
// gateway's CPU per run. database/sql re-prepares it on each pooled connection as needed.
type lazyStmt struct {
	stmt atomic.Pointer[sql.Stmt]
	mu   sync.Mutex // serialises the first preparation and close
	done bool       // closed: no more preparing
}

// get returns the prepared statement for q, preparing it on db the first time. A failed
// preparation is not remembered: the next call tries again.
func (l *lazyStmt) get(ctx context.Context, db *sqlx.DB, q string) (*sql.Stmt, error) {
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	if l.done {
		return nil, sql.ErrConnDone
	}
	// Not the caller's cancellation: the statement outlives this request.
	st, err := db.PrepareContext(context.WithoutCancel(ctx), q)
	if err != nil {
		return nil, err
	}
	l.stmt.Store(st)
	return st, nil
}

// close closes the statement, if prepared. Idempotent.
func (l *lazyStmt) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.done = true
	if st := l.stmt.Swap(nil); st != nil {
		return st.Close()
	}
	return nil
}
