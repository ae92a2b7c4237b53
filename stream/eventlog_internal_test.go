package stream

import "testing"

// TestEventLog: events keep their place as the log grows across blocks, and a copy taken
// earlier still reads the events it covers.
func TestEventLog(t *testing.T) {
	var l eventLog
	var snaps []eventLog
	const total = firstBlock*(1+2+4) + 3 // three full blocks and three events of a fourth
	for i := range total {
		l.add(Event{Seq: int64(i + 1), Type: TypeToken})
		snaps = append(snaps, l)
	}
	if l.n != total || len(l.blocks) != 4 || len(l.blocks[0]) != firstBlock || len(l.blocks[3]) != 8*firstBlock {
		t.Fatalf("n %d, blocks %d", l.n, len(l.blocks))
	}
	for k, s := range snaps {
		if s.n != k+1 {
			t.Fatalf("snapshot %d has n %d", k, s.n)
		}
		for i := range s.n {
			if got := s.at(i).Seq; got != int64(i+1) {
				t.Fatalf("snapshot %d: event %d has seq %d", k, i, got)
			}
		}
	}
}
