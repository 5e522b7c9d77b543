package broker

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// NotificationData is what one notification tells (clause 5.3.4): the
// entities that changed (or, for a periodic subscription, those that match).
type NotificationData struct {
	ID             string
	SubscriptionID string
	NotifiedAt     time.Time
	Items          []NotifiedEntity
}

// NotifiedEntity is one entity of a notification.
type NotifiedEntity struct {
	// Entity is the state after the change; for a deletion, the id and
	// types of the deleted entity only.
	Entity *Entity
	// Previous is the state before the change when known (showChanges).
	Previous *Entity
	// Deleted marks an entityDeleted notification; DeletedAt is when the
	// entity, or the attributes in Nulls, were deleted.
	Deleted   bool
	DeletedAt time.Time
	// Nulls are the canonical names of the attributes Entity shows with an
	// NGSI-LD Null instance (deleted by the change).
	Nulls []string
	// Trigger is the trigger that fired (entityCreated, attributeUpdated...;
	// empty for a periodic notification).
	Trigger string
}

// NotificationRenderer writes the body of a notification for a
// subscription's endpoint: the representation the subscription asks for
// (format, attributes, pick/omit, lang, sysAttrs, showChanges, accept), with
// terms compacted by its @context. Implementations must be safe for
// concurrent use. The API package provides the renderer that compacts
// with JSON-LD contexts; CanonicalRenderer writes canonical names.
type NotificationRenderer interface {
	RenderNotification(ctx context.Context, sub *Subscription, n *NotificationData) (body []byte, contentType string, link string, err error)
}

// CanonicalRenderer renders notifications with canonical names and no
// @context resolution (pick, omit and lang are not applied). It is the
// notifier's default when no renderer is given.
type CanonicalRenderer struct{}

// RenderNotification implements NotificationRenderer.
func (CanonicalRenderer) RenderNotification(_ context.Context, sub *Subscription, n *NotificationData) ([]byte, string, string, error) {
	np := sub.Notification
	o := RenderOptions{Format: np.Format, SysAttrs: np.SysAttrs}
	if np.Attributes != nil {
		o.Attrs = map[string]bool{}
		for _, a := range np.Attributes {
			o.Attrs[a] = true
		}
	}
	ents := make([][]byte, 0, len(n.Items))
	for _, it := range n.Items {
		ents = append(ents, RenderNotifiedEntity(it, o, np.ShowChanges, CanonicalNames))
	}
	ct := np.Endpoint.Accept
	if ct == "" || ct == "application/geo+json" {
		ct = "application/json"
	}
	return AppendNotification(nil, n, ents, nil), ct, "", nil
}

// RenderNotifiedEntity writes one entity of a notification with the
// render options: a deleted entity as its id, type, the attributes the
// notification shows as NGSI-LD Null and deletedAt; with showChanges, each
// changed attribute carries its previous value.
func RenderNotifiedEntity(it NotifiedEntity, o RenderOptions, showChanges bool, names Names) []byte {
	if o.Names == nil {
		o.Names = names
	}
	out := AppendEntity(nil, it.Entity, o)
	if showChanges && it.Previous != nil && o.Format != Simplified {
		out = AddPreviousValues(out, it.Entity, it.Previous, o.Names)
	}
	if o.SysAttrs && o.Format != Simplified {
		out = AddDeletedAt(out, it.Nulls, o.Names, it.DeletedAt)
	}
	if it.Deleted {
		out = AppendMember(out, "deletedAt", formatTime(it.DeletedAt))
	}
	return out
}

// AddDeletedAt adds "deletedAt": at to the NGSI-LD Null instances of the
// named attributes in the rendered JSON of an entity (normalized or
// concise, under sysAttrs).
func AddDeletedAt(rendered []byte, nulls []string, names Names, at time.Time) []byte {
	if len(nulls) == 0 || at.IsZero() {
		return rendered
	}
	v, err := DecodeJSON(rendered)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		return rendered
	}
	ts := formatTime(at)
	mark := func(x any) {
		am, ok := x.(map[string]any)
		if !ok {
			return
		}
		for _, k := range []string{"value", "object", "json", "vocab", "valueList", "objectList", "languageMap"} {
			val := am[k]
			if lm, ok := val.(map[string]any); ok && k == "languageMap" {
				val = lm["@none"]
			}
			if val == NullURI {
				am["deletedAt"] = ts
				return
			}
		}
	}
	for _, n := range nulls {
		switch x := m[names.Term(n)].(type) {
		case []any:
			for _, y := range x {
				mark(y)
			}
		default:
			mark(x)
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return rendered
	}
	return b
}

// AppendMember adds the member key: val to a rendered JSON object that does
// not have it at its top level.
func AppendMember(obj []byte, key string, val any) []byte {
	if len(obj) < 2 || obj[0] != '{' || obj[len(obj)-1] != '}' {
		return obj
	}
	out := make([]byte, 0, len(obj)+len(key)+32)
	out = append(out, obj[:len(obj)-1]...)
	if len(obj) > 2 {
		out = append(out, ',')
	}
	out = appendString(out, key)
	out = append(out, ':')
	out = appendValue(out, val)
	return append(out, '}')
}

// AddPreviousValues adds to the rendered JSON of an entity (normalized or
// concise) the previous value of each attribute whose value changed from
// prev: previousValue, previousObject, previousLanguageMap... (clause
// 4.5.1, showChanges). Multi-instance attributes are left alone.
func AddPreviousValues(rendered []byte, cur, prev *Entity, names Names) []byte {
	v, err := DecodeJSON(rendered)
	m, ok := v.(map[string]any)
	if err != nil || !ok {
		return rendered
	}
	changed := false
	for name, is := range cur.Attrs {
		pis := prev.Attrs[name]
		if len(is) != 1 || len(pis) != 1 || is[0].DatasetID != pis[0].DatasetID {
			continue
		}
		if sameValue(is[0].Value, pis[0].Value) {
			continue
		}
		am, ok := m[names.Term(name)].(map[string]any)
		if !ok {
			continue
		}
		key := pis[0].Type.ValueKey()
		pv := pis[0].Value
		if key == "vocab" {
			pv = termsOf(pv, names)
		}
		am["previous"+string(unicode.ToUpper(rune(key[0])))+key[1:]] = pv
		changed = true
	}
	if !changed {
		return rendered
	}
	b, err := json.Marshal(m)
	if err != nil {
		return rendered
	}
	return b
}

func sameValue(a, b any) bool {
	return string(appendValue(nil, a)) == string(appendValue(nil, b))
}

// AppendNotification writes a notification body (clause 5.3.4) around the
// rendered entities; context, if not nil, is its "@context" member.
func AppendNotification(dst []byte, n *NotificationData, ents [][]byte, context any) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, n.ID)
	dst = append(dst, `,"type":"Notification","subscriptionId":`...)
	dst = appendString(dst, n.SubscriptionID)
	dst = append(dst, `,"notifiedAt":`...)
	dst = appendString(dst, formatTime(n.NotifiedAt))
	if len(n.Items) > 0 && n.Items[0].Trigger != "" {
		dst = append(dst, `,"triggerReason":`...)
		dst = appendString(dst, n.Items[0].Trigger)
	}
	dst = append(dst, `,"data":[`...)
	for i, e := range ents {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, e...)
	}
	dst = append(dst, ']')
	if context != nil {
		dst = append(dst, `,"@context":`...)
		dst = appendValue(dst, context)
	}
	return append(dst, '}')
}

// redactURL hides the user information and query of a URL in logs.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable URL>"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	return strings.TrimSpace(u.String())
}
