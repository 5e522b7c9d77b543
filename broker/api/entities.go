package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// view is how a response shows entities.
type view struct {
	media    string
	format   broker.Format
	sysAttrs bool
	count    bool
	attrs    map[string]bool // canonical; nil = all
	ctx      *jsonld.Context
	geoProp  string // canonical name of the GeoProperty for GeoJSON output
	// inCollection leaves the @context to the enclosing FeatureCollection.
	inCollection bool
	// proj trims and reshapes entities (pick, omit, datasetId, lang, join;
	// query_projection.go); nil when none is asked.
	proj *projection
	// linked are the entities a join may show, by id.
	linked map[string]*broker.Entity
	// params are the query parameters parseView read (nil when the request
	// has none); shared, read only.
	params url.Values
}

func badParam(format string, args ...any) error {
	return &broker.Error{Kind: broker.ErrBadRequestData, Detail: fmt.Sprintf(format, args...)}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseView reads Accept, options, format, attrs and geometryProperty.
func (h *Handler) parseView(r *http.Request, c *jsonld.Context, allowGeo bool) (view, error) {
	v := view{ctx: c, geoProp: "location"}
	var err error
	if v.media, err = outputType(r, allowGeo); err != nil {
		return v, err
	}
	q := readParams(r)
	v.params = q
	n := names{c}
	keyValues, concise := false, false
	for _, o := range splitList(q.Get("options")) {
		switch o {
		case "keyValues", "simplified":
			keyValues = true
		case "concise":
			concise = true
		case "normalized":
		case "sysAttrs":
			v.sysAttrs = true
		case "count":
			v.count = true
		case "noOverwrite", "update", "replace":
		default:
			return v, &broker.Error{Kind: broker.ErrInvalidRequest, Detail: fmt.Sprintf("options: unknown option %q (keyValues, concise, normalized, sysAttrs, count)", o)}
		}
	}
	switch f := q.Get("format"); f {
	case "":
	case "keyValues", "simplified":
		keyValues = true
	case "concise":
		concise = true
	case "normalized":
	default:
		return v, &broker.Error{Kind: broker.ErrInvalidRequest, Detail: fmt.Sprintf("format: unknown format %q (normalized, concise, simplified, keyValues)", f)}
	}
	if keyValues && concise {
		return v, badParam("options/format: keyValues and concise cannot be combined")
	}
	switch {
	case keyValues:
		v.format = broker.Simplified
	case concise:
		v.format = broker.Concise
	}
	if c := q.Get("count"); c != "" {
		b, err := strconv.ParseBool(c)
		if err != nil {
			return v, badParam("count: %q is not true or false", c)
		}
		v.count = v.count || b
	}
	if a := q.Get("attrs"); a != "" {
		v.attrs = map[string]bool{}
		for _, t := range splitList(a) {
			switch t {
			case "id", "type", "@id", "@type", "scope":
				// Members, not attributes: pick selects those.
				return v, badParam("attrs: %q is an entity member, not an attribute name (pick=%s selects members)", t, t)
			}
			v.attrs[n.Canon(t)] = true
		}
	}
	if g := q.Get("geometryProperty"); g != "" {
		if v.media != mediaGeoJSON {
			return v, badParam("geometryProperty needs Accept: application/geo+json")
		}
		v.geoProp = n.Canon(g)
	}
	if hasProjection(q) {
		if v.proj, err = parseProjection(q, n, v.attrs != nil); err != nil {
			return v, err
		}
	}
	return v, nil
}

// hasProjection reports whether q holds a parameter that parseProjection
// reads: without one it has nothing to parse or refuse.
func hasProjection(q url.Values) bool {
	for _, k := range [...]string{"pick", "omit", "datasetId", "lang", "join", "joinLevel"} {
		if _, ok := q[k]; ok {
			return true
		}
	}
	return false
}

func (v view) renderOptions() broker.RenderOptions {
	o := broker.RenderOptions{Names: names{v.ctx}, Format: v.format, SysAttrs: v.sysAttrs, Attrs: v.attrs}
	if v.media == mediaLD {
		o.Context = contextValue(v.ctx)
	}
	return o
}

// appendEntity writes one entity in the view's representation.
func (v view) appendEntity(dst []byte, e *broker.Entity) []byte {
	if v.proj != nil {
		sel, picked := v.proj.sel()
		if b := v.proj.render(v, e, sel, picked, 0); b != nil {
			return append(dst, b...)
		}
		return append(dst, "{}"...)
	}
	o := v.renderOptions()
	if v.media != mediaGeoJSON {
		return broker.AppendEntity(dst, e, o)
	}
	// GeoJSON Feature: the entity's members become the properties, the
	// chosen GeoProperty the geometry.
	o.Context = nil
	pv, _ := broker.DecodeJSON(broker.AppendEntity(nil, e, o)) // numbers stay exact
	props, _ := pv.(map[string]any)
	delete(props, "id")
	var geom any
	if is := e.Attrs[v.geoProp]; len(is) > 0 && is[0].Type == broker.GeoProperty {
		geom = is[0].Value
	}
	f := map[string]any{"id": e.ID, "type": "Feature", "geometry": geom, "properties": props}
	if !v.inCollection {
		f["@context"] = contextValue(v.ctx)
	}
	b, _ := json.Marshal(f)
	return append(dst, b...)
}

func (v view) header(w http.ResponseWriter) {
	h := w.Header()
	h["Content-Type"] = mediaHeader(v.media)
	if v.media == mediaJSON {
		h["Link"] = linkHeader(v.ctx)
	}
}

// pathParam returns a path parameter decoded. chi matches on the escaped
// path when the request has one (r.URL.RawPath, set when an escape such as
// %2F matters) and on the decoded path otherwise: only the first must be
// unescaped, or an id holding "%20" or "100%" would be decoded twice.
func pathParam(r *http.Request, key string) (string, error) {
	raw := chi.URLParam(r, key)
	if r.URL.RawPath == "" {
		return raw, nil
	}
	return url.PathUnescape(raw)
}

// entityID reads and checks the {id} path parameter.
func entityID(r *http.Request) (string, error) {
	raw := chi.URLParam(r, "id")
	id, err := pathParam(r, "id")
	if err != nil || !broker.ValidURI(id) {
		return "", &broker.Error{Kind: broker.ErrBadRequestData, Detail: fmt.Sprintf("entity id %q is not a valid URI", raw)}
	}
	return id, nil
}

// attrName reads the {attr} path parameter as a canonical name.
func attrName(r *http.Request, c *jsonld.Context) (string, error) {
	raw := chi.URLParam(r, "attr")
	a, err := pathParam(r, "attr")
	if err != nil || a == "" || strings.ContainsAny(a, " \t\n<>\"'=;()") {
		return "", &broker.Error{Kind: broker.ErrBadRequestData, Detail: fmt.Sprintf("attribute name %q is not valid", raw)}
	}
	return names{c}.Canon(a), nil
}

// readEntityBody reads a body holding one JSON object, with its @context.
func (h *Handler) readObject(w http.ResponseWriter, r *http.Request, allowMergePatch bool) (map[string]any, *jsonld.Context, error) {
	ld, err := bodyType(r, allowMergePatch)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := requestContext(r)
	defer cancel()
	link := jsonld.Core()
	if !ld {
		if link, err = h.linkContext(ctx, r); err != nil {
			return nil, nil, err
		}
	}
	data, err := h.readBody(w, r)
	if err != nil {
		return nil, nil, err
	}
	v, err := broker.DecodeJSON(data)
	if err != nil {
		return nil, nil, &broker.Error{Kind: broker.ErrInvalidRequest, Detail: err.Error()}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, nil, &broker.Error{Kind: broker.ErrInvalidRequest, Detail: "the body must be a JSON object, got " + jsonKindOf(v)}
	}
	c, err := h.entityContext(ctx, ld, link, m)
	if err != nil {
		return nil, nil, err
	}
	return m, c, nil
}

func (h *Handler) createEntity(w http.ResponseWriter, r *http.Request) error {
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	m, c, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	e, err := broker.ParseEntity(m, broker.ParseOptions{Names: names{c}, KeyValues: isKeyValues(r)})
	if err != nil {
		return err
	}
	out, err := h.b.Create(r.Context(), tenant, e)
	if err != nil {
		return err
	}
	validationHeader(w, out)
	w.Header().Set("Location", "/ngsi-ld/v1/entities/"+url.PathEscape(e.ID))
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (h *Handler) getEntity(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := target(r)
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
	ev, err := h.b.GetView(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	e := ev.Entity
	if v.attrs != nil {
		found := false
		for a := range v.attrs {
			_, ok := e.Attrs[a]
			found = found || ok
		}
		if !found {
			return &broker.Error{Kind: broker.ErrNotFound, Entity: id, Detail: fmt.Sprintf("entity %s has none of the attributes %s", id, v.params.Get("attrs"))}
		}
	}
	if ts := v.params.Get("type"); ts != "" {
		ok := false
		for _, t := range splitList(ts) {
			ok = ok || e.HasType(names{c}.Canon(t))
		}
		if !ok {
			return &broker.Error{Kind: broker.ErrNotFound, Detail: fmt.Sprintf("entity %s has none of the types %s", id, ts)}
		}
	}
	if v.proj != nil && v.proj.join != "" {
		return h.answerProjected(w, r, tenant, v, e)
	}
	body := ev.Render(v.key(), v.render)
	if body == nil {
		return &broker.Error{Kind: broker.ErrNotFound, Entity: e.ID, Detail: fmt.Sprintf("nothing of entity %s is selected by pick/omit", e.ID)}
	}
	v.header(w)
	setContentLength(w, len(body))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// answerProjected answers GET /entities/{id} with pick/omit, lang or join:
// inline puts the linked entities in their relationships, flat answers an
// array of the entity and the entities it links to.
func (h *Handler) answerProjected(w http.ResponseWriter, r *http.Request, tenant string, v view, e *broker.Entity) error {
	s, picked := v.proj.sel()
	items := []flatItem{{e, s, picked}}
	if v.proj.join != "" {
		v.linked = h.linkedFrom(r.Context(), tenant, []*broker.Entity{e}, v.proj.joinLevel)
		if v.proj.join == "flat" {
			items = v.proj.flatten([]*broker.Entity{e}, v.linked)
		}
	}
	var out [][]byte
	for _, it := range items {
		if eb := v.proj.render(v, it.e, it.sel, it.picked, 0); eb != nil {
			out = append(out, eb)
		}
	}
	if len(out) == 0 {
		return &broker.Error{Kind: broker.ErrNotFound, Entity: e.ID, Detail: fmt.Sprintf("nothing of entity %s is selected by pick/omit", e.ID)}
	}
	v.header(w)
	w.WriteHeader(http.StatusOK)
	if v.proj.join != "flat" || len(out) == 1 {
		// Flat with nothing linked is the entity alone.
		_, _ = w.Write(out[0])
		return nil
	}
	buf := []byte{'['}
	for i, eb := range out {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, eb...)
	}
	_, _ = w.Write(append(buf, ']'))
	return nil
}

func (h *Handler) deleteEntity(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := target(r)
	if err != nil {
		return err
	}
	if _, err := h.b.Delete(r.Context(), tenant, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// readFragment reads a body that patches an entity: id and type optional,
// but if given they must name the target entity.
// It returns the fragment and the @context it was read with.
func (h *Handler) readFragment(w http.ResponseWriter, r *http.Request, id string, allowNull, allowMergePatch bool) (*broker.Entity, *jsonld.Context, error) {
	m, c, err := h.readObject(w, r, allowMergePatch)
	if err != nil {
		return nil, nil, err
	}
	e, err := broker.ParseEntity(m, broker.ParseOptions{Names: names{c}, Fragment: true, AllowNull: allowNull, KeyValues: isKeyValues(r)})
	if err != nil {
		return nil, nil, err
	}
	if len(e.Attrs) == 0 && len(e.Types) == 0 && e.Scope == nil {
		return nil, nil, &broker.Error{Kind: broker.ErrBadRequestData, Entity: id, Detail: "the body holds nothing to change: give at least one attribute, a type or a scope"}
	}
	if e.ID != "" && e.ID != id {
		return nil, nil, &broker.Error{Kind: broker.ErrBadRequestData, Detail: fmt.Sprintf("the body's id %s differs from the entity %s of the path", e.ID, id)}
	}
	e.ID = id
	return e, c, nil
}

func isKeyValues(r *http.Request) bool {
	q := queryParams(r)
	for _, o := range splitList(q.Get("options")) {
		if o == "keyValues" || o == "simplified" {
			return true
		}
	}
	f := q.Get("format")
	return f == "keyValues" || f == "simplified"
}

func hasOption(r *http.Request, opt string) bool {
	for _, o := range splitList(queryParams(r).Get("options")) {
		if o == opt {
			return true
		}
	}
	return false
}

// writeUpdateResult answers an attribute operation: 204 if every attribute
// was updated, 207 with an UpdateResult otherwise.
func writeUpdateResult(w http.ResponseWriter, frag *broker.Entity, out broker.Outcome, c *jsonld.Context) error {
	if len(out.NotUpdated) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	n := names{c}
	skipped := map[string]bool{}
	notUpdated := make([]map[string]any, 0, len(out.NotUpdated))
	for _, nu := range out.NotUpdated {
		skipped[nu.Attr] = true
		notUpdated = append(notUpdated, map[string]any{"attributeName": n.Term(nu.Attr), "reason": nu.Reason})
	}
	updated := []string{}
	for _, a := range frag.AttrNames() {
		if !skipped[a] {
			updated = append(updated, n.Term(a))
		}
	}
	return writeJSON(w, http.StatusMultiStatus, map[string]any{"updated": updated, "notUpdated": notUpdated})
}

// readAttr reads the body of an attribute operation: one attribute. It
// returns the tenant, the entity id, the attribute's canonical name (its
// term of the path in the request's @context) and the attribute.
func (h *Handler) readAttr(w http.ResponseWriter, r *http.Request, allowNull bool) (string, string, string, *broker.Attribute, error) {
	tenant, err := tenantOf(r)
	if err != nil {
		return "", "", "", nil, err
	}
	id, err := entityID(r)
	if err != nil {
		return "", "", "", nil, err
	}
	m, c, err := h.readObject(w, r, true)
	if err != nil {
		return "", "", "", nil, err
	}
	name, err := attrName(r, c)
	if err != nil {
		return "", "", "", nil, err
	}
	delete(m, "@context")
	if allowNull {
		// A partial update: the kind and value may be left out.
		a, err := broker.ParseAttrPatch(m, name, broker.ParseOptions{Names: names{c}})
		if err != nil {
			return "", "", "", nil, err
		}
		return tenant, id, name, a, nil
	}
	term, _ := pathParam(r, "attr")
	frag := map[string]any{term: m}
	e, err := broker.ParseEntity(frag, broker.ParseOptions{Names: names{c}, Fragment: true})
	if err != nil {
		return "", "", "", nil, err
	}
	is := e.Attrs[name]
	if len(is) != 1 {
		return "", "", "", nil, &broker.Error{Kind: broker.ErrBadRequestData, Detail: "the body must hold one attribute"}
	}
	return tenant, id, name, is[0], nil
}

func (h *Handler) patchAttr(w http.ResponseWriter, r *http.Request) error {
	tenant, id, name, a, err := h.readAttr(w, r, true)
	if err != nil {
		return err
	}
	var out broker.Outcome
	if a.Delete {
		out, err = h.b.DeleteAttr(r.Context(), tenant, id, name, a.DatasetID, false)
	} else {
		out, err = h.b.PatchAttr(r.Context(), tenant, id, name, a)
	}
	if err != nil {
		return err
	}
	validationHeader(w, out)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) replaceAttr(w http.ResponseWriter, r *http.Request) error {
	tenant, id, name, a, err := h.readAttr(w, r, false)
	if err != nil {
		return err
	}
	out, err := h.b.ReplaceAttr(r.Context(), tenant, id, name, a)
	if err != nil {
		return err
	}
	validationHeader(w, out)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) deleteAttr(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := target(r)
	if err != nil {
		return err
	}
	c, err := h.linkContext(r.Context(), r)
	if err != nil {
		return err
	}
	name, err := attrName(r, c)
	if err != nil {
		return err
	}
	q := queryParams(r)
	ds := q.Get("datasetId")
	if ds != "" && !broker.ValidURI(ds) {
		return badParam("datasetId %q is not a URI", ds)
	}
	all := false
	if s := q.Get("deleteAll"); s != "" {
		if all, err = strconv.ParseBool(s); err != nil {
			return badParam("deleteAll: %q is not true or false", s)
		}
	}
	if _, err := h.b.DeleteAttr(r.Context(), tenant, id, name, ds, all); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) purgeEntities(w http.ResponseWriter, r *http.Request) error {
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	c, err := h.linkContext(r.Context(), r)
	if err != nil {
		return err
	}
	sel, err := selection(r, c)
	if err != nil {
		return err
	}
	if !selective(r, sel) {
		// local=true is selective: the explicit way to purge every entity
		// of the tenant.
		return badParam("a purge needs type, id, idPattern, attrs, q, georel or scopeQ (or local=true to delete every entity of the tenant)")
	}
	p := broker.PurgeRequest{Query: sel}
	q := queryParams(r)
	n := names{c}
	for _, a := range splitList(q.Get("drop")) {
		p.Drop = append(p.Drop, n.Canon(a))
	}
	for _, a := range splitList(q.Get("keep")) {
		p.Keep = append(p.Keep, n.Canon(a))
	}
	if len(p.Drop) > 0 && len(p.Keep) > 0 {
		return badParam("drop and keep cannot be combined")
	}
	outs, err := h.b.Purge(r.Context(), tenant, p)
	if err != nil {
		return err
	}
	return writeBatchResult(w, outs, http.StatusNoContent, nil)
}

// deleteHistory serves DELETE /temporal/entities/{id}: the entity and all
// its history go, through the log.
func (h *Handler) deleteHistory(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := target(r)
	if err != nil {
		return err
	}
	if err := h.b.DeleteHistory(r.Context(), tenant, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// jsonKindOf names the JSON kind of a decoded body.
func jsonKindOf(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case string:
		return "a string"
	case nil:
		return "null"
	case bool:
		return "a boolean"
	}
	return "a number"
}

// target reads the tenant and the entity id that a request is about.
func target(r *http.Request) (tenant, id string, err error) {
	if tenant, err = tenantOf(r); err != nil {
		return "", "", err
	}
	if id, err = entityID(r); err != nil {
		return "", "", err
	}
	return tenant, id, nil
}

// writeFragment serves the writes whose body is a fragment of the entity of
// the path: it reads the fragment, applies write, and answers 204, or with
// updateResult the UpdateResult of an attribute operation.
func (h *Handler) writeFragment(w http.ResponseWriter, r *http.Request, allowNull, mergePatch, updateResult bool,
	write func(ctx context.Context, tenant, id string, frag *broker.Entity) (broker.Outcome, error)) error {
	tenant, id, err := target(r)
	if err != nil {
		return err
	}
	frag, c, err := h.readFragment(w, r, id, allowNull, mergePatch)
	if err != nil {
		return err
	}
	out, err := write(r.Context(), tenant, id, frag)
	if err != nil {
		return err
	}
	validationHeader(w, out)
	if updateResult {
		return writeUpdateResult(w, frag, out, c)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// mergeEntity serves PATCH /entities/{id}: the NGSI-LD Null deletes.
func (h *Handler) mergeEntity(w http.ResponseWriter, r *http.Request) error {
	return h.writeFragment(w, r, true, true, false, h.b.Merge)
}

// replaceEntity serves PUT /entities/{id}.
func (h *Handler) replaceEntity(w http.ResponseWriter, r *http.Request) error {
	return h.writeFragment(w, r, false, false, false, h.b.Replace)
}

// appendAttrs serves POST /entities/{id}/attrs (options=noOverwrite).
func (h *Handler) appendAttrs(w http.ResponseWriter, r *http.Request) error {
	noOverwrite := hasOption(r, "noOverwrite")
	return h.writeFragment(w, r, false, false, true, func(ctx context.Context, tenant, id string, frag *broker.Entity) (broker.Outcome, error) {
		return h.b.Append(ctx, tenant, id, frag, noOverwrite)
	})
}

// updateAttrs serves PATCH /entities/{id}/attrs: the NGSI-LD Null deletes.
func (h *Handler) updateAttrs(w http.ResponseWriter, r *http.Request) error {
	return h.writeFragment(w, r, true, false, true, h.b.UpdateAttrs)
}
