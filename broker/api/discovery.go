package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// This file serves discovery (GS CIM 009 clauses 5.7.5 to 5.7.8): the entity
// types and attributes a tenant has, from the read model's indexes. Names
// are compacted with the request's @context; ids are full IRIs.

// details reads details=true (also options=details... is not NGSI-LD).
func details(r *http.Request) (bool, error) {
	s := queryParams(r).Get("details")
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badParam("details: %q is not true or false", s)
	}
	return b, nil
}

func (h *Handler) discoveryStart(r *http.Request) (string, *jsonld.Context, bool, error) {
	tenant, err := tenantOf(r)
	if err != nil {
		return "", nil, false, err
	}
	c, err := h.linkContext(r.Context(), r)
	if err != nil {
		return "", nil, false, err
	}
	if _, err := outputType(r, false); err != nil {
		return "", nil, false, err
	}
	d, err := details(r)
	return tenant, c, d, err
}

// iri is the full IRI of a canonical name.
func iri(name string) string { return jsonld.Core().Expand(name) }

func kindNames(ks []broker.AttrType) []string {
	out := make([]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, k.String())
	}
	return out
}

// writeDiscovery writes a discovery body, with the @context as the Accept
// asks: a Link header for JSON, a member for JSON-LD.
func writeDiscovery(w http.ResponseWriter, r *http.Request, c *jsonld.Context, body any) error {
	media, _ := outputType(r, false)
	if media == mediaLD {
		switch b := body.(type) {
		case map[string]any:
			b["@context"] = contextValue(c)
		case []map[string]any:
			for _, m := range b {
				m["@context"] = contextValue(c)
			}
		}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", media)
	if media == mediaJSON {
		w.Header().Set("Link", contextLink(c))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(data)
	return nil
}

// listTypes serves GET /types: an EntityTypeList, or with details=true an
// array of EntityType.
func (h *Handler) listTypes(w http.ResponseWriter, r *http.Request) error {
	tenant, c, det, err := h.discoveryStart(r)
	if err != nil {
		return err
	}
	types, err := h.b.Types(r.Context(), tenant)
	if err != nil {
		return err
	}
	n := names{c}
	if det {
		out := make([]map[string]any, 0, len(types))
		for _, t := range types {
			attrs := make([]string, 0, len(t.Attrs))
			for _, a := range t.Attrs {
				attrs = append(attrs, n.Term(a.Name))
			}
			out = append(out, map[string]any{"id": iri(t.Type), "type": "EntityType", "typeName": n.Term(t.Type), "attributeNames": attrs})
		}
		return writeDiscovery(w, r, c, out)
	}
	list := make([]string, 0, len(types))
	for _, t := range types {
		list = append(list, n.Term(t.Type))
	}
	return writeDiscovery(w, r, c, map[string]any{"id": "urn:ngsi-ld:EntityTypeList:" + tenantToken(tenant), "type": "EntityTypeList", "typeList": list})
}

// getType serves GET /types/{type}: an EntityTypeInfo.
func (h *Handler) getType(w http.ResponseWriter, r *http.Request) error {
	tenant, c, _, err := h.discoveryStart(r)
	if err != nil {
		return err
	}
	raw, err := pathParam(r, "type")
	if err != nil || raw == "" {
		return badParam("type %q is not valid", raw)
	}
	n := names{c}
	want := n.Canon(raw)
	types, err := h.b.Types(r.Context(), tenant)
	if err != nil {
		return err
	}
	for _, t := range types {
		if t.Type != want {
			continue
		}
		attrs := make([]map[string]any, 0, len(t.Attrs))
		for _, a := range t.Attrs {
			attrs = append(attrs, map[string]any{"id": iri(a.Name), "type": "Attribute", "attributeName": n.Term(a.Name), "attributeTypes": kindNames(a.Kinds)})
		}
		return writeDiscovery(w, r, c, map[string]any{"id": iri(t.Type), "type": "EntityTypeInfo", "typeName": n.Term(t.Type), "entityCount": t.Count, "attributeDetails": attrs})
	}
	return &broker.Error{Kind: broker.ErrNotFound, Detail: fmt.Sprintf("no entity of type %s", raw)}
}

func attrBody(a broker.AttrInfo, n names) map[string]any {
	types := make([]string, 0, len(a.Types))
	for _, t := range a.Types {
		types = append(types, n.Term(t))
	}
	return map[string]any{"id": iri(a.Name), "type": "Attribute", "attributeName": n.Term(a.Name),
		"attributeCount": a.Count, "attributeTypes": kindNames(a.Kinds), "typeNames": types}
}

// listAttributes serves GET /attributes: an AttributeList, or with
// details=true an array of Attribute.
func (h *Handler) listAttributes(w http.ResponseWriter, r *http.Request) error {
	tenant, c, det, err := h.discoveryStart(r)
	if err != nil {
		return err
	}
	attrs, err := h.b.Attributes(r.Context(), tenant)
	if err != nil {
		return err
	}
	n := names{c}
	if det {
		out := make([]map[string]any, 0, len(attrs))
		for _, a := range attrs {
			out = append(out, attrBody(a, n))
		}
		return writeDiscovery(w, r, c, out)
	}
	list := make([]string, 0, len(attrs))
	for _, a := range attrs {
		list = append(list, n.Term(a.Name))
	}
	return writeDiscovery(w, r, c, map[string]any{"id": "urn:ngsi-ld:AttributeList:" + tenantToken(tenant), "type": "AttributeList", "attributeList": list})
}

// getAttribute serves GET /attributes/{attr}: an Attribute.
func (h *Handler) getAttribute(w http.ResponseWriter, r *http.Request) error {
	tenant, c, _, err := h.discoveryStart(r)
	if err != nil {
		return err
	}
	name, err := attrName(r, c)
	if err != nil {
		return err
	}
	attrs, err := h.b.Attributes(r.Context(), tenant)
	if err != nil {
		return err
	}
	for _, a := range attrs {
		if a.Name == name {
			return writeDiscovery(w, r, c, attrBody(a, names{c}))
		}
	}
	return &broker.Error{Kind: broker.ErrNotFound, Detail: fmt.Sprintf("no entity has the attribute %s", chiParam(r, "attr"))}
}

// tenantToken names a tenant in a list id ("default" for the default one).
func tenantToken(t string) string {
	if t == "" {
		return "default"
	}
	return t
}

func chiParam(r *http.Request, k string) string {
	s, _ := pathParam(r, k)
	return s
}
