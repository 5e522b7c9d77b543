package api

import (
	"context"
	"net/url"
	"strings"

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
		inner.media = mediaJSON // one @context, on the notification
	}
	for _, it := range n.Items {
		var b []byte
		switch {
		case it.Deleted:
			b = broker.RenderNotifiedEntity(it, broker.RenderOptions{Names: nm}, false, nm)
		default:
			b = inner.appendEntity(nil, it.Entity)
			if sub.Notification.ShowChanges && it.Previous != nil && v.format != broker.Simplified && v.media != mediaGeoJSON {
				b = broker.AddPreviousValues(b, it.Entity, it.Previous, nm)
			}
		}
		ents = append(ents, b)
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
		body = broker.AppendNotification(nil, n, ents, contextValue(c))
	default:
		body = broker.AppendNotification(nil, n, ents, nil)
		link = strings.TrimSpace(contextLink(c))
	}
	return body, ct, link, nil
}
