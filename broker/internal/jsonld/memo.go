package jsonld

import (
	"strings"
	"sync"
)

// The broker stores attribute names and entity types as IRIs compacted with
// the core context alone. A request written with another context turns each
// of its terms into such a name (ToCore) and each stored name back into its
// terms (FromCore), for every attribute of every entity it writes or reads:
// a string built and a few map lookups each time. The answers depend on the
// context alone, which is immutable, so each context keeps them.

// maxMemoNames bounds the names a context keeps in each direction: terms
// come from clients, and a context is shared by every request that sends it.
// Past the bound, answers are computed each time.
const maxMemoNames = 4096

// nameMemo holds a context's answers of FromCore and ToCore. It is safe for
// concurrent use.
type nameMemo struct {
	mu   sync.RWMutex
	from map[string]string // stored name -> term
	to   map[string]string // term -> stored name
}

func newNameMemo() *nameMemo {
	return &nameMemo{from: make(map[string]string), to: make(map[string]string)}
}

func (m *nameMemo) get(table map[string]string, k string) (string, bool) {
	m.mu.RLock()
	v, ok := table[k]
	m.mu.RUnlock()
	return v, ok
}

func (m *nameMemo) put(table map[string]string, k, v string) {
	m.mu.Lock()
	if len(table) < maxMemoNames {
		// Clones: k and v may be parts of a request body.
		table[strings.Clone(k)] = strings.Clone(v)
	}
	m.mu.Unlock()
}

// FromCore returns c's name for a name written in the core context alone
// (Compact of the core context's Expand): how a stored attribute name or
// type reads in c. It is safe for concurrent use; c keeps the answers.
func (c *Context) FromCore(name string) string {
	if c.memo == nil {
		return c.Compact(Core().Expand(name))
	}
	if t, ok := c.memo.get(c.memo.from, name); ok {
		return t
	}
	t := c.Compact(Core().Expand(name))
	c.memo.put(c.memo.from, name, t)
	return t
}

// ToCore returns the name in the core context alone of a term of c (the
// core context's Compact of c's Expand): how the broker stores an attribute
// name or type a client wrote in c. It is safe for concurrent use; c keeps
// the answers.
func (c *Context) ToCore(term string) string {
	if c.memo == nil {
		return Core().Compact(c.Expand(term))
	}
	if n, ok := c.memo.get(c.memo.to, term); ok {
		return n
	}
	n := Core().Compact(c.Expand(term))
	c.memo.put(c.memo.to, term, n)
	return n
}
