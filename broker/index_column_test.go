package broker

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestColumnCompact drives a column with random writes, rewrites and
// removals, as the index does (a slot's old entry is dropped before its new
// key goes in), and checks after every step that each returns exactly the
// slots whose current key is in a range, through compactions that grow,
// reuse and shrink the base arrays.
func TestColumnCompact(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		rng := rand.New(rand.NewPCG(seed, seed))
		c := &column{delta: map[uint32]uint64{}}
		want := map[uint32]uint64{}
		check := func(step int, lo, hi uint64) {
			var got []uint32
			c.each(lo, hi, func(s uint32) { got = append(got, s) })
			slices.Sort(got)
			var exp []uint32
			for s, k := range want {
				if k >= lo && k <= hi {
					exp = append(exp, s)
				}
			}
			slices.Sort(exp)
			if !slices.Equal(got, exp) {
				t.Fatalf("seed %d step %d [%d,%d]: got %d slots, want %d", seed, step, lo, hi, len(got), len(exp))
			}
		}
		const slots = 5000
		for step := 0; step < 60000; step++ {
			s := uint32(rng.IntN(slots))
			// Grow first, then churn, then shrink to a tenth.
			remove := step > 40000 && rng.IntN(10) != 0 || step > 15000 && rng.IntN(4) == 0
			if _, ok := want[s]; ok {
				c.drop(s)
				delete(want, s)
			}
			if !remove {
				k := rng.Uint64N(1000) // repeated keys: ties order by slot
				c.delta[s] = k
				c.maybeCompact()
				want[s] = k
			}
			if step%997 == 0 {
				lo := rng.Uint64N(1000)
				check(step, lo, lo+rng.Uint64N(200))
				check(step, 0, ^uint64(0))
			}
		}
		c.compact()
		check(-1, 0, ^uint64(0))
		if !slices.IsSortedFunc(indexPairs(c), func(a, b [2]uint64) int {
			if a[0] != b[0] {
				return int(int64(a[0]) - int64(b[0]))
			}
			return int(int64(a[1]) - int64(b[1]))
		}) {
			t.Fatalf("seed %d: base not sorted by key and slot", seed)
		}
		if len(want) > 0 && cap(c.keys) > 4*len(want)+64 {
			t.Fatalf("seed %d: %d entries hold %d of capacity", seed, len(want), cap(c.keys))
		}
	}
}

func indexPairs(c *column) [][2]uint64 {
	p := make([][2]uint64, len(c.keys))
	for i := range c.keys {
		p[i] = [2]uint64{c.keys[i], uint64(c.slots[i])}
	}
	return p
}

// BenchmarkColumnChurn rewrites every entity of a 100,000-entry column in
// turn, as a stream of upserts changing one indexed value does.
func BenchmarkColumnChurn(b *testing.B) {
	const n = 100000
	c := &column{delta: map[uint32]uint64{}}
	for s := uint32(0); s < n; s++ {
		c.delta[s] = uint64(s) * 7
		c.maybeCompact()
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s := uint32(i % n)
		c.drop(s)
		c.delta[s] = uint64(i) * 13
		c.maybeCompact()
		i++
	}
}
