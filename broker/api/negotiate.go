package api

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// Media types of the API.
const (
	mediaJSON    = "application/json"
	mediaLD      = "application/ld+json"
	mediaGeoJSON = "application/geo+json"
	mediaMerge   = "application/merge-patch+json"
)

// names adapts a JSON-LD context to the broker's Names: canonical names are
// IRIs compacted with the core context alone.
type names struct{ c *jsonld.Context }

func (n names) Canon(term string) string {
	core := jsonld.Core()
	if n.c == core || n.c.IsCoreOnly() {
		if plainTerm(term) && !core.IsDefined(term) {
			// Under the core context a term the core does not define is
			// its own canonical name (a term of the default vocabulary).
			return term
		}
		return core.Compact(core.Expand(term))
	}
	return n.c.ToCore(term)
}

func (n names) Term(name string) string {
	core := jsonld.Core()
	if n.c == core || n.c.IsCoreOnly() {
		if plainTerm(name) && !core.IsDefined(name) {
			return name
		}
		return core.Compact(core.Expand(name))
	}
	return n.c.FromCore(name)
}

// bodyType checks a request's Content-Type and returns whether it is JSON-LD.
func bodyType(r *http.Request, allowMergePatch bool) (bool, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false, &broker.Error{Kind: errUnsupportedMediaType, Detail: "Content-Type is missing: send application/json or application/ld+json"}
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false, &broker.Error{Kind: errUnsupportedMediaType, Detail: fmt.Sprintf("Content-Type %q cannot be parsed", ct)}
	}
	switch mt {
	case mediaJSON:
		return false, nil
	case mediaLD:
		if r.Header.Get("Link") != "" {
			return false, &broker.Error{Kind: broker.ErrBadRequestData, Detail: "a Link header with Content-Type application/ld+json: put the @context in the body, or send application/json"}
		}
		return true, nil
	case mediaMerge:
		if allowMergePatch {
			return false, nil
		}
	}
	return false, &broker.Error{Kind: errUnsupportedMediaType, Detail: fmt.Sprintf("Content-Type %s is not supported here: send application/json or application/ld+json", mt)}
}

// linkContext resolves the @context of the Link header (the core context if there is none).
func (h *Handler) linkContext(ctx context.Context, r *http.Request) (*jsonld.Context, error) {
	link := r.Header.Get("Link")
	if link == "" {
		return jsonld.Core(), nil
	}
	c, err := h.ctxs.LoadLink(ctx, link)
	if err != nil {
		return nil, contextError(err)
	}
	return c, nil
}

func contextError(err error) error {
	return &broker.Error{Kind: err, Detail: err.Error()}
}

// entityContext returns the @context that applies to one JSON object of a
// body: its own "@context" with JSON-LD, the Link header's otherwise.
func (h *Handler) entityContext(ctx context.Context, ld bool, link *jsonld.Context, m map[string]any) (*jsonld.Context, error) {
	raw, has := m["@context"]
	if !ld {
		if has {
			return nil, &broker.Error{Kind: broker.ErrBadRequestData, Detail: "the body has an @context but Content-Type is application/json: send application/ld+json, or the context in a Link header"}
		}
		return link, nil
	}
	if !has {
		return nil, &broker.Error{Kind: broker.ErrBadRequestData, Detail: "Content-Type application/ld+json needs an @context member in the body"}
	}
	c, err := h.ctxs.Load(ctx, raw)
	if err != nil {
		return nil, contextError(err)
	}
	return c, nil
}

// outputType picks the response media type from Accept.
func outputType(r *http.Request, allowGeo bool) (string, error) {
	accept := r.Header.Get("Accept")
	switch accept {
	case "", mediaJSON, "*/*", "application/*":
		// What most clients send: nothing to parse.
		return mediaJSON, nil
	case mediaLD:
		return mediaLD, nil
	case mediaGeoJSON:
		if allowGeo {
			return mediaGeoJSON, nil
		}
	}
	type cand struct {
		mt string
		q  float64
		i  int
	}
	var cands []cand
	for i, part := range strings.Split(accept, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mt, params, err := mime.ParseMediaType(part)
		if err != nil {
			continue
		}
		q := 1.0
		if qs, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(qs, 64); err == nil {
				q = f
			}
		}
		if q <= 0 {
			continue
		}
		switch mt {
		case mediaJSON, mediaLD:
		case mediaGeoJSON:
			if !allowGeo {
				continue
			}
		case "*/*", "application/*":
			mt = mediaJSON
		default:
			continue
		}
		cands = append(cands, cand{mt, q, i})
	}
	if len(cands) == 0 {
		return "", &broker.Error{Kind: errNotAcceptable, Detail: fmt.Sprintf("cannot answer with any of %q: accept application/json, application/ld+json or application/geo+json", accept)}
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].q > cands[b].q })
	return cands[0].mt, nil
}

// contextLink is the Link header that carries the response's @context.
func contextLink(c *jsonld.Context) string {
	u := jsonld.CoreContextURL
	if s, ok := c.Source().(string); ok && s != "" {
		u = s
	}
	return "<" + u + `>; rel="` + jsonld.ContextRel + `"; type="application/ld+json"`
}

// contextValue is the "@context" member of a JSON-LD response.
func contextValue(c *jsonld.Context) any {
	if src := c.Source(); src != nil && !c.IsCoreOnly() {
		return src
	}
	if s, ok := c.Source().(string); ok && s != "" {
		return s
	}
	return jsonld.CoreContextURL
}

// queryParams parses the query string like url.ParseQuery ('+' is a
// space, as clients that form-encode send it), except that ';' is an
// ordinary character: NGSI-LD uses it inside q, georel and type selections
// (q=a>1;b==2), where Go's parser would drop the parameter. Where a space
// cannot be meant, a '+' written unencoded stays a '+': in scopeQ (/a/+) and
// outside quoted strings in q (a time offset such as +01:00).
func queryParams(r *http.Request) url.Values {
	v := url.Values{}
	for rest := r.URL.RawQuery; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, "&")
		if part == "" {
			continue
		}
		k, val, _ := strings.Cut(part, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			key = k
		}
		value, err := url.QueryUnescape(val)
		if err != nil {
			value = val
		}
		switch key {
		case "scopeQ":
			value = strings.ReplaceAll(value, " ", "+")
		case "q":
			value = plusOutsideQuotes(value)
		}
		v[key] = append(v[key], value)
	}
	return v
}

// plusOutsideQuotes turns the spaces of a q expression that are not inside
// a quoted string back into the '+' they were written as.
func plusOutsideQuotes(q string) string {
	if !strings.Contains(q, " ") {
		return q
	}
	b := []byte(q)
	quoted, escaped := false, false
	for i, c := range b {
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == ' ' && !quoted:
			b[i] = '+'
		}
	}
	return string(b)
}

// plainTerm reports whether s is a term that is neither an IRI, a compact
// IRI nor a keyword: it has no ':' and does not start with '@'.
func plainTerm(s string) bool {
	return s != "" && s[0] != '@' && !strings.Contains(s, ":")
}
