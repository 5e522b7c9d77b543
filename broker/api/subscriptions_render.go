package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// NotificationRenderer returns the renderer the notifier writes
// notification bodies with: the entity representations of this API
// (format, attributes, pick/omit, lang, sysAttrs, GeoJSON), compacted with
// the subscription's jsonldContext, or the @context it was created with.
// It is safe for concurrent use.
func (h *Handler) NotificationRenderer() broker.NotificationRenderer { return renderer{h} }

type renderer struct{ h *Handler }

// notificationContext loads the @context notifications are compacted with.
func (h *Handler) notificationContext(ctx context.Context, sub *broker.Subscription) (*jsonld.Context, error) {
	var raw any = sub.Context
	if sub.JSONLDContext != "" {
		raw = sub.JSONLDContext
	}
	if raw == nil {
		return jsonld.Core(), nil
	}
	c, err := h.ctxs.Load(ctx, raw)
	if err != nil {
		return nil, contextError(err)
	}
	return c, nil
}

// notificationView is the view of a subscription's notifications.
func notificationView(c *jsonld.Context, sub *broker.Subscription) (view, error) {
	np := sub.Notification
	v := view{ctx: c, geoProp: "location", format: np.Format, sysAttrs: np.SysAttrs, media: np.Endpoint.Accept}
	if v.media == "" {
		v.media = mediaJSON
	}
	if np.Attributes != nil {
		v.attrs = map[string]bool{}
		for _, a := range np.Attributes {
			v.attrs[a] = true
		}
	}
	q := url.Values{}
	if np.Pick != "" {
		q.Set("pick", np.Pick)
	}
	if np.Omit != "" {
		q.Set("omit", np.Omit)
	}
	if sub.Lang != "" {
		q.Set("lang", sub.Lang)
	}
	if np.Join != "" {
		q.Set("join", np.Join)
		q.Set("joinLevel", strconv.Itoa(np.JoinLevel))
	}
	var err error
	if v.proj, err = parseProjection(q, names{c}, v.attrs != nil); err != nil {
		return v, &broker.Error{Kind: broker.ErrBadRequestData, Detail: "subscription: notification: " + broker.Detail(err)}
	}
	return v, nil
}

// RenderNotification implements broker.NotificationRenderer.
func (r renderer) RenderNotification(ctx context.Context, sub *broker.Subscription, n *broker.NotificationData) ([]byte, string, string, error) {
	c, err := r.h.notificationContext(ctx, sub)
	if err != nil {
		return nil, "", "", err
	}
	v, err := notificationView(c, sub)
	if err != nil {
		return nil, "", "", err
	}
	nm := names{c}
	ents := make([][]byte, 0, len(n.Items))
	inner := v
	inner.inCollection = true
	if inner.media == mediaLD {
		inner.media = mediaJSON // the @context is added below
	}
	ctxVal := notificationContextValue(sub, c)
	var roots []*broker.Entity
	if v.proj != nil && v.proj.join != "" {
		for _, it := range n.Items {
			if !it.Deleted {
				roots = append(roots, sub.SelectDatasets(it.Entity))
			}
		}
		v.linked = r.h.linkedFrom(ctx, sub.Tenant, roots, v.proj.joinLevel)
		inner.linked = v.linked
	}
	for _, it := range n.Items {
		var b []byte
		cur, prev := sub.SelectDatasets(it.Entity), sub.SelectDatasets(it.Previous)
		b = inner.appendEntity(nil, cur)
		if sub.Notification.ShowChanges && prev != nil && v.format != broker.Simplified && v.media != mediaGeoJSON {
			b = broker.AddPreviousValues(b, cur, prev, nm)
		}
		if v.sysAttrs && v.format != broker.Simplified && v.media != mediaGeoJSON {
			b = broker.AddDeletedAt(b, it.Nulls, nm, it.DeletedAt)
		}
		if it.Deleted {
			b = broker.AppendMember(b, "deletedAt", it.DeletedAt.UTC().Format(broker.TimeFormat))
		}
		if v.media == mediaLD {
			// Each entity is a JSON-LD document of its own, as the ETSI
			// suite reads data[i]["@context"].
			b = withContext(b, ctxVal)
		}
		ents = append(ents, b)
	}
	if v.proj != nil && v.proj.join == "flat" {
		// The linked entities follow the notified ones, each once, whole
		// (notification.attributes selects the notified entities' only).
		lw := inner
		lw.attrs = nil
		for _, fi := range v.proj.flatten(roots, v.linked)[len(roots):] {
			b := v.proj.render(lw, fi.e, fi.sel, fi.picked, 0)
			if b == nil {
				continue
			}
			if v.media == mediaLD {
				b = withContext(b, ctxVal)
			}
			ents = append(ents, b)
		}
	}
	var body []byte
	ct, link := v.media, ""
	switch v.media {
	case mediaGeoJSON:
		// data is one FeatureCollection of the entities.
		fc := []byte(`{"type":"FeatureCollection","features":[`)
		for i, e := range ents {
			if i > 0 {
				fc = append(fc, ',')
			}
			fc = append(fc, e...)
		}
		fc = append(fc, "]}"...)
		body = broker.AppendNotification(nil, n, [][]byte{fc}, contextValue(c))
	case mediaLD:
		body = broker.AppendNotification(nil, n, ents, ctxVal)
	default:
		body = broker.AppendNotification(nil, n, ents, nil)
		link = notificationLink(sub, ctxVal)
	}
	return body, ct, link, nil
}

// notificationContextValue is the @context a notification names: the
// subscription's jsonldContext, else the @context it was created with (an
// array of one URI written as that URI), else the core context.
func notificationContextValue(sub *broker.Subscription, c *jsonld.Context) any {
	if sub.JSONLDContext != "" {
		return sub.JSONLDContext
	}
	switch x := sub.Context.(type) {
	case string:
		if x != "" {
			return x
		}
	case []any:
		if len(x) == 1 {
			if u, ok := x[0].(string); ok {
				return u
			}
		}
		if len(x) > 0 {
			return x
		}
	case map[string]any:
		return x
	}
	return contextValue(c)
}

// notificationLink is the Link header of an application/json notification:
// the URI of its @context (with several, the first that is not the core
// context, which every context includes; an inline one cannot be linked).
func notificationLink(sub *broker.Subscription, ctxVal any) string {
	u := jsonld.CoreContextURL
	switch x := ctxVal.(type) {
	case string:
		u = x
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s != jsonld.CoreContextURL {
				u = s
				break
			}
		}
	}
	return "<" + u + `>; rel="` + jsonld.ContextRel + `"; type="application/ld+json"`
}

// withContext adds "@context" to a rendered JSON object that has none.
func withContext(obj []byte, ctxVal any) []byte {
	if len(obj) < 2 || obj[0] != '{' || bytes.Contains(obj, []byte(`"@context":`)) {
		return obj
	}
	cb, err := json.Marshal(ctxVal)
	if err != nil {
		return obj
	}
	out := make([]byte, 0, len(obj)+len(cb)+14)
	out = append(out, obj[:len(obj)-1]...)
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = append(out, `"@context":`...)
	out = append(out, cb...)
	return append(out, '}')
}

// linkedFrom fetches the entities that the relationships of ents name, and
// theirs, up to level hops (at most 1000; those that do not exist are left
// out), for a join: of a query, a retrieval or a notification.
func (h *Handler) linkedFrom(ctx context.Context, tenant string, ents []*broker.Entity, level int) map[string]*broker.Entity {
	out := map[string]*broker.Entity{}
	frontier := ents
	const maxLinked = 1000
	for l := 0; l < level && len(frontier) > 0 && len(out) < maxLinked; l++ {
		var next []*broker.Entity
		for _, e := range frontier {
			for _, id := range linkedIDs(e) {
				if _, done := out[id]; done || len(out) >= maxLinked {
					continue
				}
				le, err := h.b.Get(ctx, tenant, id)
				if err != nil {
					out[id] = nil
					continue
				}
				out[id] = le
				next = append(next, le)
			}
		}
		frontier = next
	}
	for id, e := range out {
		if e == nil {
			delete(out, id)
		}
	}
	return out
}
