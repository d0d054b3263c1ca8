package run

import (
	"slices"
	"testing"
)

// fakeSentinel records the registrations it holds.
type fakeSentinel struct{ held map[int]int } // key -> pgid

func (f *fakeSentinel) Register(gen, pgid, _ int, _ string) error { f.held[gen] = pgid; return nil }
func (f *fakeSentinel) Unregister(gen int) error                  { delete(f.held, gen); return nil }
func (f *fakeSentinel) Handover() (int, int)                      { return -1, 0 }

// TestProgramSentinelKeys: two programs that register the same generation
// keys hold distinct registrations with the one sentinel; a second
// Register of a key replaces that program's own; an Unregister removes
// only the program's own, and one of a key never registered is nothing.
func TestProgramSentinelKeys(t *testing.T) {
	sen := &fakeSentinel{held: map[int]int{}}
	keys := &sentinelKeys{sen: sen, ids: map[[2]int]int{}}
	a, b := programSentinel{keys: keys, prog: 0}, programSentinel{keys: keys, prog: 1}
	a.Register(1, 100, -1, "")
	b.Register(1, 200, -1, "")
	a.Register(2, 300, -1, "")
	a.Register(2, 301, -1, "") // again: replaces a's own
	pgids := func() []int {
		var out []int
		for _, p := range sen.held {
			out = append(out, p)
		}
		slices.Sort(out)
		return out
	}
	if got := pgids(); !slices.Equal(got, []int{100, 200, 301}) {
		t.Fatalf("registrations hold groups %v, want 100, 200 and 301", got)
	}
	if err := b.Unregister(2); err != nil { // b never registered 2
		t.Fatal(err)
	}
	a.Unregister(1)
	if got := pgids(); !slices.Equal(got, []int{200, 301}) {
		t.Fatalf("after a's gen 1 is gone: %v, want b's 200 and a's 301", got)
	}
	b.Unregister(1)
	a.Unregister(2)
	if len(sen.held) != 0 || len(keys.ids) != 0 {
		t.Fatalf("left: sentinel %v, keys %v", sen.held, keys.ids)
	}
}
