package broker

import (
	"cmp"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Query selects entities: every condition given must hold. The API
// refuses a query with no condition at all; the broker does not.
type Query struct {
	// Types: an entity matches if it has any of them (canonical names).
	Types []string
	// TypeSel is the type selection language (A,B either; (A;B) both).
	TypeSel   *TypeSelection
	IDs       []string
	IDPattern *regexp.Regexp
	// Attrs: an entity matches if it has any of them (canonical names).
	Attrs  []string
	Q      *QExpr
	Geo    *GeoQuery
	Scope  *ScopeQuery
	Limit  int // -1 means the broker's maximum
	Offset int
	// OrderBy orders the matches (then by id); empty means by id.
	OrderBy []OrderKey
	// Entities, if any, select entities that match one of them (the
	// entities member of a Query body, clause 5.2.23).
	Entities []EntitySelector
}

// EntitySelector selects entities by id, id pattern and type; the fields
// given must all hold.
type EntitySelector struct {
	ID        string
	IDPattern *regexp.Regexp
	Types     *TypeSelection
}

func (es *EntitySelector) match(r *record) bool {
	return (es.ID == "" || es.ID == r.id) && (es.IDPattern == nil || es.IDPattern.MatchString(r.id)) && es.Types.Match(r.types)
}

func matchSelectors(r *record, sels []EntitySelector) bool {
	if len(sels) == 0 {
		return true
	}
	for i := range sels {
		if sels[i].match(r) {
			return true
		}
	}
	return false
}

// OrderKey is one key of an ordering (GS CIM 009 clause 4.23): "id",
// "type", "createdAt", "modifiedAt", or the canonical name of an attribute,
// whose value (of its first instance) orders the entities: numbers before
// strings before booleans; entities without a comparable value come last,
// in either direction.
type OrderKey struct {
	Key string
	// Path descends into sub-attributes of the attribute's first
	// instance (canonical names), where "createdAt", "modifiedAt" and
	// "observedAt" name the instance's own timestamps ("name.createdAt").
	Path []string
	Desc bool
}

// QueryResult is one page of a query.
type QueryResult struct {
	Entities []*Entity
	// Total is the number of matching entities across all pages.
	Total int
}

// Query returns the entities that match q, sorted by id (or q.OrderBy).
// The entities may be shared with other readers: the caller must not modify
// them.
//
// It plans from the read model's indexes (index.go): each condition that an
// index can answer gives an estimate of its candidates; the smallest one
// enumerates them, the others test each candidate (a type or presence set,
// a value column turned into a bitmap, the indexed point of a geo-query).
// Only candidates that an index cannot settle are decoded and checked with
// the full semantics (Match), and then only the page is decoded to be
// returned.
func (b *Broker) Query(ctx context.Context, tenantName string, q Query) (QueryResult, error) {
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return QueryResult{}, err
	}
	limit := q.Limit
	if limit < 0 {
		limit = b.opts.MaxResults
	}
	return t.rm.query(ctx, &q, limit)
}

// query runs a query on the read model; limit is the page size.
func (rm *readModel) query(ctx context.Context, q *Query, limit int) (QueryResult, error) {
	rm.mu.RLock()
	exact, maybe := rm.plan(q)
	rm.mu.RUnlock()
	resolve := func(id string) *Entity {
		if r := rm.get(id); r != nil {
			if e, err := rm.shared(r); err == nil {
				return e
			}
		}
		return nil
	}
	hits := exact
	for i, r := range maybe {
		if i%256 == 255 && ctx.Err() != nil {
			return QueryResult{}, fmt.Errorf("%w: query stopped: %v", ErrInternal, ctx.Err())
		}
		e, err := rm.shared(r)
		if err != nil {
			return QueryResult{}, err
		}
		if matches(e, *q, resolve) {
			hits = append(hits, r)
		}
	}
	total := len(hits)
	if q.Offset >= total || limit <= 0 {
		return QueryResult{Total: total}, nil
	}
	end := total
	if limit < total-q.Offset {
		end = q.Offset + limit
	}
	page, err := rm.order(hits, q.OrderBy, end)
	if err != nil {
		return QueryResult{}, err
	}
	ents := make([]*Entity, 0, end-q.Offset)
	for _, r := range page[q.Offset:end] {
		e, err := rm.shared(r)
		if err != nil {
			return QueryResult{}, err
		}
		ents = append(ents, e)
	}
	return QueryResult{Entities: ents, Total: total}, nil
}

// matchesRecord checks the conditions a record answers without decoding.
func matchesRecord(r *record, q *Query) bool {
	if len(q.Types) > 0 && !slices.ContainsFunc(q.Types, func(t string) bool { return slices.Contains(r.types, t) }) {
		return false
	}
	if q.TypeSel != nil && !q.TypeSel.Match(r.types) {
		return false
	}
	if len(q.IDs) > 0 && !slices.Contains(q.IDs, r.id) {
		return false
	}
	if !matchSelectors(r, q.Entities) {
		return false
	}
	return q.IDPattern == nil || q.IDPattern.MatchString(r.id)
}

// matches evaluates the conditions that need the entity's attributes.
func matches(e *Entity, q Query, resolve func(string) *Entity) bool {
	if len(q.Attrs) > 0 {
		found := false
		for _, a := range q.Attrs {
			if _, ok := e.Attrs[a]; ok {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	if q.Scope != nil && !q.Scope.Match(e.Scope) {
		return false
	}
	if q.Geo != nil && !q.Geo.Match(e) {
		return false
	}
	if q.Q != nil {
		if q.Q.Linked() {
			return q.Q.MatchLinked(e, resolve)
		}
		return q.Q.Match(e)
	}
	return true
}

// cond is one condition of a plan that an index answers: est bounds its
// candidates; gen enumerates them (maybe: the index cannot settle it, the
// entity must be checked); test tells whether a slot passes.
type cond struct {
	est  int
	gen  func(f func(s uint32, maybe bool))
	test func(s uint32) (in, maybe bool)
}

// plan returns the records that match for sure, and those that must be
// decoded and checked. It runs under the read lock.
func (rm *readModel) plan(q *Query) (exact, maybe []*record) {
	ix := rm.ix
	var conds []cond
	// verifyAll: some condition no index settles.
	verifyAll := q.Scope != nil
	if len(q.IDs) > 0 {
		conds = append(conds, rm.idsCond(q.IDs))
	}
	types := q.Types
	if q.TypeSel != nil && !q.TypeSel.All() {
		types = q.TypeSel.AnyOf()
	}
	if len(types) > 0 {
		conds = append(conds, ix.typesCond(types))
	}
	if len(q.Attrs) > 0 {
		conds = append(conds, ix.anyAttrCond(q.Attrs))
	}
	if len(q.Entities) > 0 {
		// A superset of the selectors' matches; each is checked on the record.
		allIDs, allTypes := true, true
		var ids, types []string
		for _, es := range q.Entities {
			allIDs = allIDs && es.ID != ""
			allTypes = allTypes && !es.Types.All()
			ids = append(ids, es.ID)
			types = append(types, es.Types.AnyOf()...)
		}
		switch {
		case allIDs:
			conds = append(conds, rm.idsCond(ids))
		case allTypes:
			conds = append(conds, ix.typesCond(types))
		}
	}
	if q.Q != nil {
		if !qCovered(q.Q) {
			verifyAll = true
		}
		for _, t := range q.Q.Conjuncts() {
			c, exactTerm := ix.termCond(t, len(ix.slots))
			if c != nil {
				conds = append(conds, *c)
			}
			verifyAll = verifyAll || !exactTerm
		}
	}
	if q.Geo != nil {
		conds = append(conds, ix.geoCond(q.Geo))
	}
	drive := -1
	for i := range conds {
		if drive < 0 || conds[i].est < conds[drive].est {
			drive = i
		}
	}
	typeOK := ix.typeTest(q)
	keep := func(s uint32, m bool) {
		if m && ix.unindexed.has(s) {
			// No index holds it: check it all, the record then the entity.
			if r := ix.slots[s]; r != nil && matchesRecord(r, q) {
				maybe = append(maybe, r)
			}
			return
		}
		for i := range conds {
			if i == drive {
				continue
			}
			in, mb := conds[i].test(s)
			if !in {
				return
			}
			m = m || mb
		}
		if typeOK != nil && !typeOK(s) {
			return
		}
		r := ix.slots[s]
		if r == nil || q.IDPattern != nil && !q.IDPattern.MatchString(r.id) || !matchSelectors(r, q.Entities) {
			return
		}
		if m || verifyAll {
			maybe = append(maybe, r)
		} else {
			exact = append(exact, r)
		}
	}
	if drive < 0 {
		for s, r := range ix.slots {
			if r != nil {
				keep(uint32(s), ix.unindexed.has(uint32(s)))
			}
		}
		return exact, maybe
	}
	conds[drive].gen(keep)
	// Records the index could not read: candidates of every query.
	ix.unindexed.each(func(s uint32) bool {
		in, _ := conds[drive].test(s)
		if !in {
			keep(s, true)
		}
		return true
	})
	return exact, maybe
}

// typeTest returns a check of the query's types on the type sets (no
// record is read), or nil when the query names no type.
func (ix *index) typeTest(q *Query) func(uint32) bool {
	sel := q.TypeSel
	if sel.All() {
		sel = nil
	}
	if len(q.Types) == 0 && sel == nil {
		return nil
	}
	var sets []*slotSet
	for _, t := range q.Types {
		if ts := ix.types[t]; ts != nil {
			sets = append(sets, ts)
		}
	}
	var cur uint32
	has := func(t string) bool { return ix.types[t].has(cur) }
	return func(s uint32) bool {
		if len(q.Types) > 0 && !slices.ContainsFunc(sets, func(ts *slotSet) bool { return ts.has(s) }) {
			return false
		}
		if sel != nil {
			cur = s
			return sel.root.eval(has)
		}
		return true
	}
}

// qCovered reports whether the conjuncts of q are all of q: a single term
// or an AND of terms, without linked-entity terms.
func qCovered(q *QExpr) bool {
	if q.Linked() {
		return false
	}
	switch q.root.kind {
	case qTermNode:
		return true
	case qAndNode:
		for i := range q.root.kids {
			if q.root.kids[i].kind != qTermNode {
				return false
			}
		}
		return true
	}
	return false
}

func (rm *readModel) idsCond(ids []string) cond {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	ix := rm.ix
	return cond{
		est: len(set),
		// ids are few: read the records.
		gen: func(f func(uint32, bool)) {
			for id := range set {
				if r := rm.byID[id]; r != nil {
					f(r.slot, false)
				}
			}
		},
		test: func(s uint32) (bool, bool) { return set[ix.slots[s].id], false },
	}
}

// typesCond: the entity has one of the types.
func (ix *index) typesCond(types []string) cond {
	est := 0
	for _, t := range types {
		est += ix.types[t].len()
	}
	return cond{
		est: est,
		gen: func(f func(uint32, bool)) {
			var seen bitmap
			if len(types) > 1 {
				seen = newBitmap(len(ix.slots))
			}
			for _, t := range types {
				ix.types[t].each(func(s uint32) bool {
					if seen != nil {
						if seen.has(s) {
							return true
						}
						seen.set(s)
					}
					f(s, false)
					return true
				})
			}
		},
		// matchesRecord checks the types of every candidate.
		test: func(uint32) (bool, bool) { return true, false },
	}
}

// anyAttrCond: the entity has one of the attributes.
func (ix *index) anyAttrCond(attrs []string) cond {
	var sets []*slotSet
	est := 0
	for _, a := range attrs {
		if ai := ix.attrs[a]; ai != nil {
			sets = append(sets, &ai.present)
			est += ai.present.len()
		}
	}
	return cond{
		est: est,
		gen: func(f func(uint32, bool)) {
			var seen bitmap
			if len(sets) > 1 {
				seen = newBitmap(len(ix.slots))
			}
			for _, set := range sets {
				set.each(func(s uint32) bool {
					if seen != nil {
						if seen.has(s) {
							return true
						}
						seen.set(s)
					}
					f(s, false)
					return true
				})
			}
		},
		test: func(s uint32) (bool, bool) {
			for _, set := range sets {
				if set.has(s) {
					return true, false
				}
			}
			return false, false
		},
	}
}

// termCond turns a conjunct of q into an index condition. exact reports
// whether the condition settles the term for the entities the index holds
// by value (the others are candidates to check); a nil cond means no index
// helps (the term is then checked on every candidate).
func (ix *index) termCond(t QTerm, nslots int) (*cond, bool) {
	if t.Attr == "" || t.Op == "notExists" {
		// Entity system times, or absence: no index narrows them.
		return nil, false
	}
	ai := ix.attrs[t.Attr]
	none := &cond{est: 0, gen: func(func(uint32, bool)) {}, test: func(uint32) (bool, bool) { return false, false }}
	if ai == nil {
		// Nobody has the attribute: the term cannot hold.
		return none, true
	}
	plain := len(t.Sub) == 0 && t.Meta == "" && len(t.Keys) == 0
	presence := &cond{
		est:  ai.present.len(),
		gen:  func(f func(uint32, bool)) { ai.present.each(func(s uint32) bool { f(s, false); return true }) },
		test: func(s uint32) (bool, bool) { return ai.present.has(s), false },
	}
	if !plain {
		return presence, false
	}
	type rng struct {
		col    int
		lo, hi uint64
	}
	var rs []rng
	switch t.Op {
	case "exists":
		return presence, true
	case "==":
		if t.Range {
			lo, ok1 := t.Values[0].(float64)
			hi, ok2 := t.Values[1].(float64)
			if !ok1 || !ok2 {
				return presence, false
			}
			rs = append(rs, rng{colNum, numKey(lo), numKey(hi)})
			break
		}
		for _, v := range t.Values {
			switch x := v.(type) {
			case float64:
				rs = append(rs, rng{colNum, numKey(x), numKey(x)})
			case string:
				k := strKey(x)
				rs = append(rs, rng{colStr, k, k})
			case bool:
				k := boolKey(x)
				rs = append(rs, rng{colBool, k, k})
			default:
				return presence, false
			}
		}
	case ">", ">=", "<", "<=":
		x, ok := t.Values[0].(float64)
		if !ok {
			return presence, false
		}
		k := numKey(x)
		switch t.Op {
		case ">":
			if k == ^uint64(0) {
				return none, true
			}
			rs = append(rs, rng{colNum, k + 1, ^uint64(0)})
		case ">=":
			rs = append(rs, rng{colNum, k, ^uint64(0)})
		case "<":
			if k == 0 {
				return none, true
			}
			rs = append(rs, rng{colNum, 0, k - 1})
		case "<=":
			rs = append(rs, rng{colNum, 0, k})
		}
	default:
		return presence, false
	}
	est := ai.other.len()
	for _, r := range rs {
		est += ai.cols[r.col].estimate(r.lo, r.hi)
	}
	var bm bitmap
	return &cond{
		est: est,
		gen: func(f func(uint32, bool)) {
			for _, r := range rs {
				ai.cols[r.col].each(r.lo, r.hi, func(s uint32) { f(s, false) })
			}
			ai.other.each(func(s uint32) bool { f(s, true); return true })
		},
		test: func(s uint32) (bool, bool) {
			if ai.other.has(s) {
				return true, true
			}
			if bm == nil {
				bm = newBitmap(nslots)
				for _, r := range rs {
					ai.cols[r.col].each(r.lo, r.hi, bm.set)
				}
			}
			return bm.has(s), false
		},
	}, true
}

// geoCond: the geo-query. Points in the grid are checked exactly here;
// other geometries are candidates to check on the entity.
func (ix *index) geoCond(g *GeoQuery) cond {
	ai := ix.attrs[g.Property()]
	if ai == nil {
		return cond{gen: func(func(uint32, bool)) {}, test: func(uint32) (bool, bool) { return false, false }}
	}
	test := func(s uint32) (bool, bool) {
		if ai.geo != nil && ai.geo.in.has(s) {
			return g.matchPoint(ai.geo.pts[s]), false
		}
		if ai.other.has(s) {
			return true, true
		}
		return false, false
	}
	minX, minY, maxX, maxY, ok := g.BBox()
	if !ok {
		return cond{
			est: ai.present.len(),
			gen: func(f func(uint32, bool)) {
				ai.present.each(func(s uint32) bool {
					if in, m := test(s); in {
						f(s, m)
					}
					return true
				})
			},
			test: test,
		}
	}
	return cond{
		est: ai.geo.inBox(minX, minY, maxX, maxY, nil) + ai.other.len(),
		gen: func(f func(uint32, bool)) {
			ai.geo.inBox(minX, minY, maxX, maxY, func(s uint32, p pt) {
				if g.matchPoint(p) {
					f(s, false)
				}
			})
			ai.other.each(func(s uint32) bool { f(s, true); return true })
		},
		test: test,
	}
}

// order sorts the first n records of hits by the ordering (by id when it
// is empty) and returns hits with them in front.
func (rm *readModel) order(hits []*record, keys []OrderKey, n int) ([]*record, error) {
	byID := func(a, b *record) int { return strings.Compare(a.id, b.id) }
	cmpf := byID
	if len(keys) > 0 {
		type keyed struct {
			vals []any
		}
		vals := make(map[*record][]any, len(hits))
		for _, r := range hits {
			e, err := rm.shared(r)
			if err != nil {
				return nil, err
			}
			vs := make([]any, len(keys))
			for i, k := range keys {
				vs[i] = orderValue(e, k)
			}
			vals[r] = vs
		}
		cmpf = func(a, b *record) int {
			va, vb := vals[a], vals[b]
			for i, k := range keys {
				if c := compareOrder(va[i], vb[i], k.Desc); c != 0 {
					return c
				}
			}
			return byID(a, b)
		}
	}
	if n < len(hits)/4 {
		topK(hits, n, cmpf)
		return hits, nil
	}
	slices.SortFunc(hits, cmpf)
	return hits, nil
}

// topK moves the k smallest elements of s to its front, in order, in
// O(len(s) log k).
func topK[T any](s []T, k int, cmpf func(a, b T) int) {
	if k <= 0 {
		return
	}
	// A max-heap of the k smallest seen so far, in s[:k].
	h := s[:k]
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			if r := l + 1; r < len(h) && cmpf(h[r], h[l]) > 0 {
				l = r
			}
			if cmpf(h[l], h[i]) <= 0 {
				return
			}
			h[i], h[l] = h[l], h[i]
			i = l
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for i := k; i < len(s); i++ {
		if cmpf(s[i], h[0]) < 0 {
			h[0], s[i] = s[i], h[0]
			down(0)
		}
	}
	slices.SortFunc(h, cmpf)
}

// orderValue is the value an ordering key takes on an entity: a float64, a
// string, a bool, or nil.
func orderValue(e *Entity, k OrderKey) any {
	key := k.Key
	if len(k.Path) > 0 {
		return orderPathValue(e, k)
	}
	switch key {
	case "id":
		return e.ID
	case "type":
		if len(e.Types) > 0 {
			return e.Types[0]
		}
		return nil
	case "createdAt", "modifiedAt":
		ts := e.CreatedAt
		if key == "modifiedAt" {
			ts = e.ModifiedAt
		}
		if ts.IsZero() {
			return nil
		}
		return ts.UTC().Format(orderTimeLayout)
	}
	is := e.Attrs[key]
	if len(is) == 0 {
		return nil
	}
	return attrOrderValue(is[0])
}

// orderTimeLayout formats timestamps for ordering: fixed width, so that
// the strings compare as the times do (RFC3339Nano drops trailing zeros).
const orderTimeLayout = "2006-01-02T15:04:05.000000000Z"

// orderPathValue is the value of a sub-attribute path ("name.createdAt",
// "name.subProperty") on an entity, or nil.
func orderPathValue(e *Entity, k OrderKey) any {
	is := e.Attrs[k.Key]
	if len(is) == 0 {
		return nil
	}
	a := is[0]
	for i, p := range k.Path {
		last := i == len(k.Path)-1
		switch {
		case last && (p == "createdAt" || p == "modifiedAt"):
			ts := a.CreatedAt
			if p == "modifiedAt" {
				ts = a.ModifiedAt
			}
			if ts.IsZero() {
				return nil
			}
			return ts.UTC().Format(orderTimeLayout)
		case last && p == "observedAt":
			if a.ObservedAt == "" {
				return nil
			}
			return a.ObservedAt
		}
		if a = a.Sub[p]; a == nil {
			return nil
		}
	}
	return attrOrderValue(a)
}

// attrOrderValue is the value an attribute instance orders by.
func attrOrderValue(a *Attribute) any {
	v := a.Value
	switch a.Type {
	case LanguageProperty:
		lm, _ := v.(map[string]any)
		if len(lm) == 0 {
			return nil
		}
		ks := make([]string, 0, len(lm))
		for k := range lm {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		v = lm[ks[0]]
	}
	if m, ok := v.(map[string]any); ok {
		v = m["@value"]
	}
	if f, ok := numberValue(v); ok {
		return f
	}
	switch x := v.(type) {
	case string, bool:
		return x
	}
	return nil
}

func orderRank(v any) int {
	switch v.(type) {
	case float64:
		return 0
	case string:
		return 1
	case bool:
		return 2
	}
	return 3
}

// compareOrder compares two ordering values; missing values come last in
// both directions.
func compareOrder(a, b any, desc bool) int {
	ra, rb := orderRank(a), orderRank(b)
	if ra == 3 || rb == 3 {
		return cmp.Compare(ra, rb)
	}
	c := cmp.Compare(ra, rb)
	if c == 0 {
		switch x := a.(type) {
		case float64:
			c = cmp.Compare(x, b.(float64))
		case string:
			c = strings.Compare(x, b.(string))
		case bool:
			c = cmp.Compare(boolKey(x), boolKey(b.(bool)))
		}
	}
	if desc {
		return -c
	}
	return c
}
