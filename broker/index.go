package broker

import (
	"encoding/json"
	"hash/maphash"
	"math"
	"slices"
	"strings"
)

// This file is the read model's secondary indexes: what a query planner
// needs to start from a small set of candidates instead of scanning.
//
// Every live record gets a slot, a dense number reused after deletes, so
// that sets of entities are compact (slotSet: about 2 bytes a member). Per
// attribute name the index keeps:
//   - present: the entities that have the attribute (any kind, any instance);
//   - other: those whose attribute no value column or geo index holds (several
//     instances, arrays, compound or language values, non-Point geometries):
//     a query always takes them as candidates and checks them on the entity;
//   - value columns for a Property's scalar value or a Relationship's single
//     object, when the attribute has one instance: numbers (ordered, for
//     ranges), strings (a 64-bit hash, for equality only: a collision costs a
//     candidate, never a wrong answer) and booleans;
//   - for a GeoProperty holding one Point, a grid of cells of 1/128 degree,
//     and the point itself, so that a geo-query on points needs no decoding.
//
// The trade-off: an entity costs about 12 bytes for each value it has in a
// column, 4 bytes in the grid plus 16 for its point, and 2 bytes in each
// present set; long strings cost no more than short ones (only their hash is
// kept), and what is not indexed by value is still found through present and
// other. Columns are sorted arrays with a small unsorted delta of recent
// writes and a set of slots whose sorted entry is stale; the delta is merged
// in when it grows past 256 + 1/32 of the column, so writes stay O(1)
// amortised and reads binary-search.
//
// The index is owned by its read model: writers change it under the read
// model's write lock, readers look under its read lock.

// The value columns of an attribute.
const (
	colNum = iota
	colStr
	colBool
	numCols
)

// gridRes is the number of grid cells per degree of the geo index.
const gridRes = 128

// recAttr is what the index needs of one attribute of a stored state.
type recAttr struct {
	name  string
	kinds uint16 // bit 1<<AttrType for each instance's kind
	col   int8   // colNum, colStr, colBool; -1 when not in a column
	key   uint64
	geo   bool // a single Point GeoProperty: p holds it
	p     pt
}

// recIndex is read from the stored form when a record is made, and
// consumed by the index when the record is applied.
type recIndex struct {
	attrs []recAttr
}

// attrRef is an attribute a record was indexed under, with the kinds of
// its instances; lists of them are interned (entities of one type usually
// share one).
type attrRef struct {
	name  string
	kinds uint16
}

// index is the set of secondary indexes of one read model.
type index struct {
	slots []*record
	free  []uint32
	// unindexed are records whose stored form could not be read for the
	// index: every query takes them as candidates.
	unindexed slotSet
	types     map[string]*slotSet
	attrs     map[string]*attrIndex
	// typeAttrs counts, per type, the entities that have each attribute.
	typeAttrs map[string]map[string]int
	attrLists map[string][]attrRef
}

// attrIndex indexes one attribute name.
type attrIndex struct {
	name    string
	present slotSet
	other   slotSet
	kinds   [JsonProperty + 1]int // entities with an instance of each kind
	cols    [numCols]*column
	geo     *geoGrid
}

func newIndex() *index {
	return &index{
		types:     map[string]*slotSet{},
		attrs:     map[string]*attrIndex{},
		typeAttrs: map[string]map[string]int{},
		attrLists: map[string][]attrRef{},
	}
}

// strSeed hashes string values for the string columns.
var strSeed = maphash.MakeSeed()

func strKey(s string) uint64 { return maphash.String(strSeed, s) }

// numKey maps a float to a uint64 with the same order (and -0 to 0).
func numKey(f float64) uint64 {
	if f == 0 {
		f = 0
	}
	b := math.Float64bits(f)
	if b>>63 == 1 {
		return ^b
	}
	return b | 1<<63
}

func boolKey(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// readIndex reads what the index needs from a stored state. It returns nil
// when the stored form cannot be read.
func readIndex(stored []byte) *recIndex {
	v, err := DecodeJSON(stored)
	if err != nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	ri := &recIndex{attrs: make([]recAttr, 0, len(m))}
	for name, av := range m {
		if entityMembers[name] {
			continue
		}
		ra := recAttr{name: name, col: -1}
		switch x := av.(type) {
		case map[string]any:
			k := attrTypeByName(str(x["type"]))
			ra.kinds = 1 << k
			scalarOf(&ra, k, x)
		case []any:
			for _, el := range x {
				if em, ok := el.(map[string]any); ok {
					ra.kinds |= 1 << attrTypeByName(str(em["type"]))
				}
			}
		}
		ri.attrs = append(ri.attrs, ra)
	}
	slices.SortFunc(ri.attrs, func(a, b recAttr) int { return strings.Compare(a.name, b.name) })
	return ri
}

func str(v any) string { s, _ := v.(string); return s }

// scalarOf fills the column key (or the point) of a single instance.
func scalarOf(ra *recAttr, k AttrType, m map[string]any) {
	switch k {
	case Property:
		switch v := m["value"].(type) {
		case json.Number:
			if f, err := v.Float64(); err == nil {
				ra.col, ra.key = colNum, numKey(f)
			}
		case float64:
			ra.col, ra.key = colNum, numKey(v)
		case string:
			ra.col, ra.key = colStr, strKey(v)
		case bool:
			ra.col, ra.key = colBool, boolKey(v)
		}
	case Relationship:
		if s, ok := m["object"].(string); ok {
			ra.col, ra.key = colStr, strKey(s)
		}
	case GeoProperty:
		g, _ := m["value"].(map[string]any)
		if g != nil && str(g["type"]) == "Point" {
			if p, ok := position(g["coordinates"]); ok {
				ra.geo, ra.p = true, p
			}
		}
	}
}

func (ix *index) attr(name string) *attrIndex {
	ai := ix.attrs[name]
	if ai == nil {
		ai = &attrIndex{name: strings.Clone(name)}
		ix.attrs[ai.name] = ai
	}
	return ai
}

// add indexes a record that has just been made live; it sets r.slot.
func (ix *index) add(r *record) {
	if n := len(ix.free); n > 0 {
		r.slot = ix.free[n-1]
		ix.free = ix.free[:n-1]
		ix.slots[r.slot] = r
	} else {
		r.slot = uint32(len(ix.slots))
		ix.slots = append(ix.slots, r)
	}
	s := r.slot
	for _, t := range r.types {
		ts := ix.types[t]
		if ts == nil {
			ts = &slotSet{}
			ix.types[t] = ts
		}
		ts.add(s)
	}
	ri := r.pending
	r.pending = nil
	if ri == nil {
		ix.unindexed.add(s)
		return
	}
	ix.addAttrs(r, ri)
}

// indexLate indexes the attributes of a record that was applied without
// them (see readModel.backfill).
func (ix *index) indexLate(r *record, ri *recIndex) {
	if ri == nil || !ix.unindexed.has(r.slot) {
		return
	}
	ix.unindexed.remove(r.slot)
	ix.addAttrs(r, ri)
}

// addAttrs indexes a record's attributes (its slot and types are in already).
func (ix *index) addAttrs(r *record, ri *recIndex) {
	s := r.slot
	for i := range ri.attrs {
		ra := &ri.attrs[i]
		ai := ix.attr(ra.name)
		ai.present.add(s)
		for k := range ai.kinds {
			if ra.kinds&(1<<k) != 0 {
				ai.kinds[k]++
			}
		}
		switch {
		case ra.col >= 0:
			c := ai.cols[ra.col]
			if c == nil {
				c = &column{delta: map[uint32]uint64{}}
				ai.cols[ra.col] = c
			}
			c.delta[s] = ra.key
			c.maybeCompact()
		case ra.geo:
			if ai.geo == nil {
				ai.geo = &geoGrid{cells: map[uint64][]uint32{}}
			}
			ai.geo.add(s, ra.p)
		default:
			ai.other.add(s)
		}
		for _, t := range r.types {
			ta := ix.typeAttrs[t]
			if ta == nil {
				ta = map[string]int{}
				ix.typeAttrs[t] = ta
			}
			ta[ai.name]++
		}
	}
	r.attrs = ix.internAttrs(ri.attrs)
}

// internAttrs returns a shared list of the attributes and kinds.
func (ix *index) internAttrs(as []recAttr) []attrRef {
	if len(as) == 0 {
		return nil
	}
	var sb strings.Builder
	for _, a := range as {
		sb.WriteString(a.name)
		sb.WriteByte(0)
		sb.WriteByte(byte(a.kinds))
		sb.WriteByte(byte(a.kinds >> 8))
	}
	key := sb.String()
	if l, ok := ix.attrLists[key]; ok {
		return l
	}
	l := make([]attrRef, len(as))
	for i, a := range as {
		l[i] = attrRef{name: ix.attrs[a.name].name, kinds: a.kinds}
	}
	if len(ix.attrLists) < 100000 {
		ix.attrLists[key] = l
	}
	return l
}

// remove forgets a record that is replaced or deleted, and frees its slot.
func (ix *index) remove(r *record) {
	s := r.slot
	if int(s) >= len(ix.slots) || ix.slots[s] != r {
		return
	}
	for _, t := range r.types {
		if ts := ix.types[t]; ts != nil {
			ts.remove(s)
			if ts.len() == 0 {
				delete(ix.types, t)
			}
		}
	}
	ix.unindexed.remove(s)
	for _, a := range r.attrs {
		ai := ix.attrs[a.name]
		if ai == nil {
			continue
		}
		ai.present.remove(s)
		ai.other.remove(s)
		for k := range ai.kinds {
			if a.kinds&(1<<k) != 0 {
				ai.kinds[k]--
			}
		}
		for _, c := range ai.cols {
			if c != nil {
				c.drop(s)
			}
		}
		if ai.geo != nil {
			ai.geo.remove(s)
		}
		for _, t := range r.types {
			if ta := ix.typeAttrs[t]; ta != nil {
				if ta[a.name]--; ta[a.name] <= 0 {
					delete(ta, a.name)
					if len(ta) == 0 {
						delete(ix.typeAttrs, t)
					}
				}
			}
		}
		if ai.present.len() == 0 {
			delete(ix.attrs, a.name)
		}
	}
	ix.slots[s] = nil
	ix.free = append(ix.free, s)
}

// column is a value column: base entries sorted by (key, slot), a delta of
// recent entries by slot, and the slots whose base entry is stale.
type column struct {
	keys  []uint64
	slots []uint32
	delta map[uint32]uint64
	stale slotSet
}

func (c *column) drop(s uint32) {
	delete(c.delta, s)
	c.stale.add(s)
}

// maybeCompact merges the delta into the sorted base when it has grown.
func (c *column) maybeCompact() {
	if len(c.delta)+c.stale.len() > 256+len(c.keys)/32 {
		c.compact()
	}
}

// compact merges the delta into the sorted base and drops its stale
// entries. It works in the base's own arrays when they have room (readers
// look under the read lock and keep no slice of them), so that a column
// rewritten by a stream of upserts makes no garbage of its size each time.
func (c *column) compact() {
	type ent struct {
		k uint64
		s uint32
	}
	d := make([]ent, 0, len(c.delta))
	for s, k := range c.delta {
		d = append(d, ent{k, s})
	}
	slices.SortFunc(d, func(a, b ent) int {
		if a.k != b.k {
			if a.k < b.k {
				return -1
			}
			return 1
		}
		return int(a.s) - int(b.s)
	})
	// Drop the stale entries, keeping the order.
	w := 0
	if c.stale.len() > 0 {
		for i, s := range c.slots {
			if !c.stale.has(s) {
				c.keys[w], c.slots[w] = c.keys[i], s
				w++
			}
		}
	} else {
		w = len(c.keys)
	}
	n := w + len(d)
	switch {
	case n > cap(c.keys) || n > cap(c.slots):
		// Grow with a little room, so that the next compactions of a
		// growing column do not each allocate.
		room := n + n/16
		keys, slots := make([]uint64, w, room), make([]uint32, w, room)
		copy(keys, c.keys[:w])
		copy(slots, c.slots[:w])
		c.keys, c.slots = keys, slots
	case n < cap(c.keys)/2:
		// Shrunk by half: give the memory back.
		c.keys, c.slots = slices.Clone(c.keys[:w]), slices.Clone(c.slots[:w])
		c.keys, c.slots = slices.Grow(c.keys, len(d)), slices.Grow(c.slots, len(d))
	}
	c.keys, c.slots = c.keys[:n], c.slots[:n]
	// Merge from the back, so that nothing is overwritten before it moved.
	i, j := w-1, len(d)-1
	for k := n - 1; j >= 0; k-- {
		if i >= 0 && (c.keys[i] > d[j].k || c.keys[i] == d[j].k && c.slots[i] > d[j].s) {
			c.keys[k], c.slots[k] = c.keys[i], c.slots[i]
			i--
		} else {
			c.keys[k], c.slots[k] = d[j].k, d[j].s
			j--
		}
	}
	clear(c.delta)
	c.stale.clear()
}

// span returns the base positions [i, j) of keys within [lo, hi].
func (c *column) span(lo, hi uint64) (int, int) {
	i, _ := slices.BinarySearch(c.keys, lo)
	j := i
	if hi == math.MaxUint64 {
		j = len(c.keys)
	} else {
		j, _ = slices.BinarySearch(c.keys[i:], hi+1)
		j += i
	}
	return i, j
}

// estimate is an upper bound of the entries within [lo, hi].
func (c *column) estimate(lo, hi uint64) int {
	if c == nil || lo > hi {
		return 0
	}
	i, j := c.span(lo, hi)
	return j - i + len(c.delta)
}

// each calls f for the live slots whose key is within [lo, hi].
func (c *column) each(lo, hi uint64, f func(uint32)) {
	if c == nil || lo > hi {
		return
	}
	i, j := c.span(lo, hi)
	checkStale := c.stale.len() > 0
	for _, s := range c.slots[i:j] {
		if !checkStale || !c.stale.has(s) {
			f(s)
		}
	}
	for s, k := range c.delta {
		if k >= lo && k <= hi {
			f(s)
		}
	}
}

// geoGrid indexes single Point values on cells of 1/gridRes degree.
type geoGrid struct {
	cells map[uint64][]uint32
	pts   []pt // by slot; valid for members of in
	in    slotSet
}

func cellOf(p pt) (uint32, uint32) {
	x := int((p.x + 180) * gridRes)
	y := int((p.y + 90) * gridRes)
	return uint32(min(max(x, 0), 360*gridRes-1)), uint32(min(max(y, 0), 180*gridRes-1))
}

func cellKey(x, y uint32) uint64 { return uint64(x)<<32 | uint64(y) }

func (g *geoGrid) add(s uint32, p pt) {
	if int(s) >= len(g.pts) {
		g.pts = append(g.pts, make([]pt, int(s)+1-len(g.pts))...)
	}
	g.pts[s] = p
	g.in.add(s)
	k := cellKey(cellOf(p))
	g.cells[k] = append(g.cells[k], s)
}

func (g *geoGrid) remove(s uint32) {
	if !g.in.has(s) {
		return
	}
	g.in.remove(s)
	k := cellKey(cellOf(g.pts[s]))
	c := g.cells[k]
	if i := slices.Index(c, s); i >= 0 {
		c[i] = c[len(c)-1]
		c = c[:len(c)-1]
	}
	if len(c) == 0 {
		delete(g.cells, k)
	} else {
		g.cells[k] = c
	}
}

// inBox calls f for the points whose cell meets the box (lon from minX to
// maxX, across the antimeridian when minX > maxX). It returns how many
// points it visited; with a nil f it only counts them.
func (g *geoGrid) inBox(minX, minY, maxX, maxY float64, f func(uint32, pt)) int {
	if g == nil {
		return 0
	}
	type xr struct{ a, b uint32 }
	var xs []xr
	_, y0 := cellOf(pt{0, minY})
	_, y1 := cellOf(pt{0, maxY})
	if minX > maxX {
		a, _ := cellOf(pt{minX, 0})
		b, _ := cellOf(pt{maxX, 0})
		xs = []xr{{a, 360*gridRes - 1}, {0, b}}
	} else {
		a, _ := cellOf(pt{minX, 0})
		b, _ := cellOf(pt{maxX, 0})
		xs = []xr{{a, b}}
	}
	ncells := 0
	for _, r := range xs {
		ncells += int(r.b-r.a+1) * int(y1-y0+1)
	}
	visited := 0
	visit := func(c []uint32) {
		if f != nil {
			for _, s := range c {
				f(s, g.pts[s])
			}
		}
		visited += len(c)
	}
	if ncells > len(g.cells) {
		for k, c := range g.cells {
			x, y := uint32(k>>32), uint32(k)
			if y < y0 || y > y1 {
				continue
			}
			for _, r := range xs {
				if x >= r.a && x <= r.b {
					visit(c)
					break
				}
			}
		}
		return visited
	}
	for _, r := range xs {
		for x := r.a; x <= r.b; x++ {
			for y := y0; y <= y1; y++ {
				if c, ok := g.cells[cellKey(x, y)]; ok {
					visit(c)
				}
			}
		}
	}
	return visited
}

// bytes estimates the memory of the secondary indexes (not the records,
// nor the id and type maps of the read model).
func (ix *index) bytes() int {
	n := 8*cap(ix.slots) + 4*cap(ix.free) + ix.unindexed.bytes()
	for _, s := range ix.types {
		n += s.bytes()
	}
	for _, ai := range ix.attrs {
		n += ai.present.bytes() + ai.other.bytes()
		for _, c := range ai.cols {
			if c != nil {
				n += 8*cap(c.keys) + 4*cap(c.slots) + 24*len(c.delta) + c.stale.bytes()
			}
		}
		if g := ai.geo; g != nil {
			n += 16*cap(g.pts) + g.in.bytes() + 48*len(g.cells)
			for _, c := range g.cells {
				n += 4 * cap(c)
			}
		}
	}
	return n
}
