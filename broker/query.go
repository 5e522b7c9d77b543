package broker

import (
	"context"
	"fmt"
	"regexp"
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
}

// QueryResult is one page of a query.
type QueryResult struct {
	Entities []*Entity
	// Total is the number of matching entities across all pages.
	Total int
}

// Query returns the entities that match q, sorted by id. The entities may
// be shared with other readers: the caller must not modify them.
func (b *Broker) Query(ctx context.Context, tenantName string, q Query) (QueryResult, error) {
	t, err := b.tenant(ctx, tenantName, false)
	if err != nil {
		return QueryResult{}, err
	}
	types := q.Types
	if q.TypeSel != nil && !q.TypeSel.All() {
		types = q.TypeSel.AnyOf()
	}
	recs := t.rm.selectRecords(types, q.IDs, func(r *record) bool {
		if q.TypeSel != nil && !q.TypeSel.Match(r.types) {
			return false
		}
		return q.IDPattern == nil || q.IDPattern.MatchString(r.id)
	})
	needEntity := len(q.Attrs) > 0 || q.Q != nil || q.Geo != nil || q.Scope != nil
	resolve := func(id string) *Entity {
		if r := t.rm.get(id); r != nil {
			if e, err := t.rm.shared(r); err == nil {
				return e
			}
		}
		return nil
	}
	var ents []*Entity
	total := 0
	limit := q.Limit
	if limit < 0 {
		limit = b.opts.MaxResults
	}
	for i, r := range recs {
		if i%1024 == 1023 && ctx.Err() != nil {
			return QueryResult{}, fmt.Errorf("%w: query stopped: %v", ErrInternal, ctx.Err())
		}
		var e *Entity
		if needEntity {
			if e, err = t.rm.shared(r); err != nil {
				return QueryResult{}, err
			}
			if !matches(e, q, resolve) {
				continue
			}
		}
		total++
		if total <= q.Offset || len(ents) >= limit {
			continue
		}
		if e == nil {
			if e, err = t.rm.shared(r); err != nil {
				return QueryResult{}, err
			}
		}
		ents = append(ents, e)
	}
	return QueryResult{Entities: ents, Total: total}, nil
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
