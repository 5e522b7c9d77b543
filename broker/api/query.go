package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// This file answers queries: GET /entities and POST /entityOperations/query
// (GS CIM 009 clauses 5.7.2 and 6.23), with paging (limit, offset, count,
// Link rel="next"/"prev"), ordering and linked-entity retrieval.

const defaultLimit = 20

// selection reads the entity selection of a query or purge: type, id,
// idPattern, attrs, q, geo-query, scopeQ, orderBy.
func selection(r *http.Request, c *jsonld.Context) (broker.Query, error) {
	return selectionOf(queryParams(r), c)
}

func selectionOf(q url.Values, c *jsonld.Context) (broker.Query, error) {
	n := names{c}
	var sel broker.Query
	if ts := q.Get("type"); ts != "" {
		tsel, err := broker.ParseTypeSelection(ts, n)
		if err != nil {
			return sel, err
		}
		sel.TypeSel = tsel
	}
	for _, id := range splitList(q.Get("id")) {
		if !broker.ValidURI(id) {
			return sel, badParam("id: %q is not a URI", id)
		}
		sel.IDs = append(sel.IDs, id)
	}
	if p := q.Get("idPattern"); p != "" {
		re, err := broker.CompileRegexp("idPattern", p)
		if err != nil {
			return sel, err
		}
		sel.IDPattern = re
	}
	for _, a := range splitList(q.Get("attrs")) {
		sel.Attrs = append(sel.Attrs, n.Canon(a))
	}
	if s := q.Get("q"); s != "" {
		qe, err := broker.ParseQ(s, n)
		if err != nil {
			return sel, err
		}
		sel.Q = qe
	}
	if rel := q.Get("georel"); rel != "" || q.Get("geometry") != "" || q.Get("coordinates") != "" {
		g, err := broker.ParseGeoQuery(rel, q.Get("geometry"), q.Get("coordinates"), q.Get("geoproperty"), n)
		if err != nil {
			return sel, err
		}
		sel.Geo = g
	}
	if s := q.Get("scopeQ"); s != "" {
		sq, err := broker.ParseScopeQ(s)
		if err != nil {
			return sel, err
		}
		sel.Scope = sq
	}
	if s, ok := q["orderBy"]; ok {
		keys, err := parseOrderBy(strings.Join(s, ","), n)
		if err != nil {
			return sel, err
		}
		sel.OrderBy = keys
	}
	return sel, nil
}

// parseOrderBy reads orderBy (clause 4.23): keys separated by commas, each
// a member or attribute name with an optional ";asc" or ";desc".
func parseOrderBy(s string, n names) ([]broker.OrderKey, error) {
	var keys []broker.OrderKey
	for _, part := range strings.Split(s, ",") {
		name, dir, _ := strings.Cut(strings.TrimSpace(part), ";")
		if name == "" || strings.ContainsAny(name, " \t<>\"'=()[]{}") {
			return nil, badParam("orderBy: %q is not an attribute or member name", part)
		}
		k := broker.OrderKey{Key: name}
		var path []string
		if !strings.Contains(name, ":") { // an IRI keeps its dots
			name, path = splitPath(name)
		}
		switch name {
		case "id", "type", "createdAt", "modifiedAt":
			if len(path) > 0 {
				return nil, badParam("orderBy: %s has no sub-attributes", name)
			}
		default:
			k.Key = n.Canon(name)
		}
		for _, p := range path {
			if p == "" {
				return nil, badParam("orderBy: %q has an empty sub-attribute name", part)
			}
			switch p {
			case "createdAt", "modifiedAt", "observedAt":
			default:
				p = n.Canon(p)
			}
			k.Path = append(k.Path, p)
		}
		switch dir {
		case "", "asc":
		case "desc":
			k.Desc = true
		case "dist-asc", "dist-desc":
			return nil, &broker.Error{Kind: broker.ErrOperationNotSupported, Detail: "orderBy: ordering by distance is not supported"}
		default:
			return nil, badParam("orderBy: %q is not asc or desc", dir)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// splitPath splits "attr.sub.sub2" into the attribute and its
// sub-attribute path.
func splitPath(s string) (string, []string) {
	parts := strings.Split(s, ".")
	return parts[0], parts[1:]
}

// selective reports whether a query names at least one condition, as
// NGSI-LD asks of a query (or local=true, which asks for everything here).
func selective(r *http.Request, sel broker.Query) bool {
	return sel.TypeSel != nil || len(sel.Types) > 0 || len(sel.Entities) > 0 || len(sel.IDs) > 0 || sel.IDPattern != nil || len(sel.Attrs) > 0 ||
		sel.Q != nil || sel.Geo != nil || sel.Scope != nil || queryParams(r).Get("local") == "true"
}

func (h *Handler) queryEntities(w http.ResponseWriter, r *http.Request) error {
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	c, err := h.linkContext(r.Context(), r)
	if err != nil {
		return err
	}
	v, err := h.parseView(r, c, true)
	if err != nil {
		return err
	}
	sel, err := selection(r, c)
	if err != nil {
		return err
	}
	if !selective(r, sel) {
		return badParam("a query needs at least one of type, id, idPattern, attrs, q, georel or scopeQ (or local=true)")
	}
	return h.answerQuery(w, r, tenant, v, sel)
}

// answerQuery reads the paging parameters, runs the query and writes the
// page with its count and Link headers.
func (h *Handler) answerQuery(w http.ResponseWriter, r *http.Request, tenant string, v view, sel broker.Query) error {
	q := queryParams(r)
	sel.Limit = defaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return badParam("limit: %q is not a non-negative integer", s)
		}
		if n > h.b.MaxResults() {
			return &broker.Error{Kind: broker.ErrTooManyResults, Detail: fmt.Sprintf("limit %d is over the maximum of %d", n, h.b.MaxResults())}
		}
		if n == 0 && !v.count {
			return badParam("limit=0 is only allowed with count=true")
		}
		sel.Limit = n
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return badParam("offset: %q is not a non-negative integer", s)
		}
		sel.Offset = n
	}
	res, err := h.b.Query(r.Context(), tenant, sel)
	if err != nil {
		return err
	}
	if v.count {
		w.Header().Set("NGSILD-Results-Count", strconv.Itoa(res.Total))
	}
	var items []flatItem
	if v.proj != nil {
		s, picked := v.proj.sel()
		items = make([]flatItem, 0, len(res.Entities))
		for _, e := range res.Entities {
			items = append(items, flatItem{e, s, picked})
		}
		if v.proj.join != "" {
			v.linked = h.linkedFrom(r.Context(), tenant, res.Entities, v.proj.joinLevel)
			if v.proj.join == "flat" {
				items = v.proj.flatten(res.Entities, v.linked)
			}
		}
	}
	v.header(w)
	pagingLinks(w, r, sel, res.Total, v.media)
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, 0, 1024*(len(res.Entities)+len(items)+1))
	if v.media == mediaGeoJSON {
		buf = append(buf, `{"type":"FeatureCollection","features":`...)
		v.inCollection = true
	}
	buf = append(buf, '[')
	first := true
	add := func(eb []byte) {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, eb...)
	}
	if v.proj != nil {
		for _, it := range items {
			if eb := v.proj.render(v, it.e, it.sel, it.picked, 0); eb != nil {
				add(eb) // entities that nothing is selected of are left out
			}
		}
	} else {
		for _, e := range res.Entities {
			add(v.appendEntity(nil, e))
		}
	}
	buf = append(buf, ']')
	if v.media == mediaGeoJSON {
		ctx, _ := json.Marshal(contextValue(v.ctx))
		buf = append(buf, `,"@context":`...)
		buf = append(buf, ctx...)
		buf = append(buf, '}')
	}
	_, _ = w.Write(buf)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// pagingLinks sets the Link headers rel="prev" and rel="next" (clause
// 4.12): the same request with the offset of the previous or next page,
// its parameters in alphabetical order.
func pagingLinks(w http.ResponseWriter, r *http.Request, sel broker.Query, total int, media string) {
	if sel.Limit <= 0 {
		return
	}
	link := func(offset int, rel string) {
		params := queryParams(r)
		params.Set("offset", strconv.Itoa(offset))
		params.Set("limit", strconv.Itoa(sel.Limit))
		var sb strings.Builder
		for i, k := range sortedKeys(params) {
			for j, val := range params[k] {
				if i > 0 || j > 0 {
					sb.WriteByte('&')
				}
				sb.WriteString(linkEscape(k))
				sb.WriteByte('=')
				sb.WriteString(linkEscape(val))
			}
		}
		w.Header().Add("Link", fmt.Sprintf(`<%s?%s>; rel="%s";type="%s"`, r.URL.EscapedPath(), sb.String(), rel, media))
	}
	if sel.Offset > 0 {
		link(max(0, sel.Offset-sel.Limit), "prev")
	}
	if sel.Offset+sel.Limit < total {
		link(sel.Offset+sel.Limit, "next")
	}
}

// linkEscape escapes what would break a query string inside a Link header,
// and keeps the rest as clients wrote it (':' and ';' of NGSI-LD values).
func linkEscape(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`&#%+<>"\`+"`", c) >= 0 {
			fmt.Fprintf(&sb, "%%%02X", c)
			continue
		}
		sb.WriteByte(c)
	}
	return sb.String()
}

// queryPost serves POST /entityOperations/query: the selection is a Query
// object in the body (clause 5.2.23), paging is in the URL.
func (h *Handler) queryPost(w http.ResponseWriter, r *http.Request) error {
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	m, c, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	params, geo, sels, err := queryBody(m)
	if err != nil {
		return err
	}
	v, err := h.parseView(r, c, true)
	if err != nil {
		return err
	}
	n := names{c}
	if a := params.Get("attrs"); a != "" {
		v.attrs = map[string]bool{}
		for _, t := range splitList(a) {
			v.attrs[n.Canon(t)] = true
		}
	}
	if params.Get("pick") != "" || params.Get("omit") != "" || params.Get("lang") != "" || params.Get("join") != "" || params.Get("datasetId") != "" {
		merged := queryParams(r)
		for k, vs := range params {
			merged[k] = vs
		}
		if v.proj, err = parseProjection(merged, n, v.attrs != nil); err != nil {
			return err
		}
	}
	sel, err := selectionOf(params, c)
	if err != nil {
		return err
	}
	for _, es := range sels {
		var bs broker.EntitySelector
		if id := es["id"]; id != "" {
			if !broker.ValidURI(id) {
				return badParam("entities: id %q is not a URI", id)
			}
			bs.ID = id
		}
		if p := es["idPattern"]; p != "" {
			if bs.IDPattern, err = broker.CompileRegexp("idPattern", p); err != nil {
				return err
			}
		}
		if t := es["type"]; t != "" {
			if bs.Types, err = broker.ParseTypeSelection(t, n); err != nil {
				return err
			}
		}
		sel.Entities = append(sel.Entities, bs)
	}
	if geo != nil {
		g, err := broker.ParseGeoQueryJSON(str(geo["georel"]), str(geo["geometry"]), geo["coordinates"], str(geo["geoproperty"]), n)
		if err != nil {
			return err
		}
		sel.Geo = g
	}
	return h.answerQuery(w, r, tenant, v, sel)
}

func str(v any) string { s, _ := v.(string); return s }

// queryBody turns a Query object into the parameters of GET /entities, and
// its geoQ. entities[] become id, idPattern and type: several selectors
// select the union of their ids, patterns and types.
func queryBody(m map[string]any) (url.Values, map[string]any, []map[string]string, error) {
	p := url.Values{}
	if t, ok := m["type"]; ok && t != "Query" {
		return nil, nil, nil, badParam(`the body's type must be "Query"`)
	}
	strMember := func(k string) error {
		v, ok := m[k]
		if !ok {
			return nil
		}
		s, isStr := v.(string)
		if !isStr {
			return badParam("%s: must be a string", k)
		}
		p.Set(k, s)
		return nil
	}
	for _, k := range []string{"q", "scopeQ", "lang", "join", "datasetId"} {
		if err := strMember(k); err != nil {
			return nil, nil, nil, err
		}
	}
	if jl, ok := m["joinLevel"]; ok {
		n, isNum := jl.(json.Number)
		if !isNum {
			return nil, nil, nil, badParam("joinLevel: must be a number")
		}
		p.Set("joinLevel", n.String())
	}
	list := func(k string) error {
		v, ok := m[k]
		if !ok {
			return nil
		}
		switch x := v.(type) {
		case string:
			if x == "" {
				return badParam("%s: empty", k)
			}
			p.Set(k, x)
		case []any:
			if len(x) == 0 {
				return badParam("%s: an empty array is not allowed", k)
			}
			var parts []string
			for _, el := range x {
				s, ok := el.(string)
				if !ok || s == "" {
					return badParam("%s: every element must be a non-empty string", k)
				}
				parts = append(parts, s)
			}
			p.Set(k, strings.Join(parts, ","))
		default:
			return badParam("%s: must be an array of strings", k)
		}
		return nil
	}
	for _, k := range []string{"attrs", "pick", "omit"} {
		if err := list(k); err != nil {
			return nil, nil, nil, err
		}
	}
	var sels []map[string]string
	if ev, ok := m["entities"]; ok {
		arr, isArr := ev.([]any)
		if !isArr || len(arr) == 0 {
			return nil, nil, nil, badParam("entities: must be a non-empty array of entity selectors")
		}
		for _, el := range arr {
			es, ok := el.(map[string]any)
			if !ok {
				return nil, nil, nil, badParam("entities: every element must be an object {id, idPattern, type}")
			}
			sel := map[string]string{}
			for _, k := range []string{"id", "type", "idPattern"} {
				if x, ok := es[k]; ok {
					s, isStr := x.(string)
					if !isStr || s == "" {
						return nil, nil, nil, badParam("entities: %s must be a non-empty string", k)
					}
					sel[k] = s
				}
			}
			sels = append(sels, sel)
		}
	}
	var geo map[string]any
	if g, ok := m["geoQ"]; ok {
		if geo, ok = g.(map[string]any); !ok {
			return nil, nil, nil, badParam("geoQ: must be an object {geometry, coordinates, georel, geoproperty}")
		}
		for _, k := range []string{"geometry", "georel", "geoproperty"} {
			if x, ok := geo[k]; ok {
				if _, isStr := x.(string); !isStr {
					return nil, nil, nil, badParam("geoQ.%s: must be a string", k)
				}
			}
		}
	}
	if len(p) == 0 && geo == nil && len(sels) == 0 {
		return nil, nil, nil, badParam("the query needs at least one of entities, attrs, q, geoQ or scopeQ")
	}
	return p, geo, sels, nil
}
