package db

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// FinishInterruptedRuns marks as RunError, with errCode and message, every run still "running"
// whose endpoint timeout plus margin has passed at now: no gateway can still be running it,
// since a run never outlives its timeout_ms. Runs of other replicas that may still be in
// progress are left alone. It returns how many runs it finished. The server calls it at startup
// for runs a crashed process left behind.
func (s *Store) FinishInterruptedRuns(ctx context.Context, now time.Time, margin time.Duration, errCode, message string) (int64, error) {
	// created_at and now are microseconds, timeout_ms milliseconds. A run whose endpoint is
	// gone counts as having no timeout left.
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE runs SET status = ?, error_code = ?, error_message = ?, finished_at = ?
		WHERE status = 'running' AND created_at + 1000 * COALESCE(
			(SELECT e.timeout_ms FROM endpoints e WHERE e.id = runs.endpoint_id), 0) < ?`),
		RunError, errCode, message, micros(now.UTC()), micros(now.Add(-margin)))
	if err != nil {
		return 0, fmt.Errorf("db: finish interrupted runs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("db: finish interrupted runs: %w", err)
	}
	return n, nil
}

// FinishRunsIfRunning gives the runs ids that are still "running" a final status, error code
// and message. It is the last resort of a shutdown whose deadline passed before those runs
// wrote their own record. It returns how many it changed.
func (s *Store) FinishRunsIfRunning(ctx context.Context, ids []string, status, errCode, message string) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := []any{status, errCode, message, micros(now())}
	marks := make([]string, len(ids))
	for i, id := range ids {
		marks[i] = "?"
		args = append(args, id)
	}
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE runs SET status = ?, error_code = ?, error_message = ?, finished_at = ?
		WHERE status = 'running' AND id IN (`+strings.Join(marks, ", ")+`)`), args...)
	if err != nil {
		return 0, fmt.Errorf("db: finish runs: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("db: finish runs: %w", err)
	}
	return n, nil
}
