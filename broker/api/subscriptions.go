package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// This file serves /ngsi-ld/v1/subscriptions (GS CIM 009 clause 5.8 and
// 6.10-6.11) and the dead letters of a subscription, an extension at
// /ngsi-ld/ex/v1/subscriptions/{id}/dead-letters.

// maxSubscriptionPage bounds limit on GET /subscriptions.
const maxSubscriptionPage = 1000

func (h *Handler) subscriptionRoutes(r chi.Router) {
	r.Post("/subscriptions", h.wrap(h.createSubscription))
	r.Get("/subscriptions", h.wrap(h.listSubscriptions))
	r.Get("/subscriptions/{id}", h.wrap(h.getSubscription))
	r.Patch("/subscriptions/{id}", h.wrap(h.patchSubscription))
	r.Delete("/subscriptions/{id}", h.wrap(h.deleteSubscription))
}

func (h *Handler) exSubscriptionRoutes(r chi.Router) {
	r.Get(exRoot+"/subscriptions/{id}/dead-letters", h.wrap(h.listDeadLetters))
}

// subscriptionTarget reads the tenant and the subscription id of a request.
func subscriptionTarget(r *http.Request) (string, string, error) {
	tenant, err := tenantOf(r)
	if err != nil {
		return "", "", err
	}
	id, err := pathParam(r, "id")
	if err != nil || !broker.ValidURI(id) {
		return "", "", badParam("subscription id %q is not a URI", chi.URLParam(r, "id"))
	}
	return tenant, id, nil
}

func (h *Handler) createSubscription(w http.ResponseWriter, r *http.Request) error {
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	m, c, err := h.readObject(w, r, false)
	if err != nil {
		return err
	}
	sub, err := broker.ParseSubscription(m, broker.SubscriptionParseOptions{Names: names{c},
		AllowedHosts: h.opts.NotificationHosts, Now: time.Now()})
	if err != nil {
		return err
	}
	sub.Context = contextValue(c)
	if err := h.checkSubscriptionContext(r, sub); err != nil {
		return err
	}
	if err := h.opts.Subscriptions.Create(r.Context(), tenant, sub); err != nil {
		return err
	}
	w.Header().Set("Location", "/ngsi-ld/v1/subscriptions/"+url.PathEscape(sub.ID))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// checkSubscriptionContext makes sure the @context notifications will be
// compacted with can be loaded, and the pick/omit selection parsed with it.
func (h *Handler) checkSubscriptionContext(r *http.Request, sub *broker.Subscription) error {
	ctx, cancel := requestContext(r)
	defer cancel()
	c, err := h.notificationContext(ctx, sub)
	if err != nil {
		return err
	}
	_, err = notificationView(c, sub)
	return err
}

func (h *Handler) patchSubscription(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := subscriptionTarget(r)
	if err != nil {
		return err
	}
	m, c, err := h.readObject(w, r, true)
	if err != nil {
		return err
	}
	if len(m) == 0 || len(m) == 1 && m["@context"] != nil {
		return badParam("subscription: the patch has no member to change")
	}
	if pid, ok := m["id"]; ok && pid != id {
		return badParam("subscription: id: cannot be changed (%v in the body, %s in the path)", pid, id)
	}
	_, err = h.opts.Subscriptions.Update(r.Context(), tenant, id, func(cur *broker.Subscription) (*broker.Subscription, error) {
		doc := broker.MergeSubscriptionPatch(cur.Doc(), m)
		doc["id"] = id
		next, err := broker.ParseSubscription(doc, broker.SubscriptionParseOptions{
			Names: patchNames{stored: cur.Terms(), req: names{c}}, AllowedHosts: h.opts.NotificationHosts, Now: time.Now()})
		if err != nil {
			return nil, err
		}
		next.Context = cur.Context
		if err := h.checkSubscriptionContext(r, next); err != nil {
			return nil, err
		}
		return next, nil
	})
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// patchNames resolves the terms of a merged subscription: those stored with
// the names recorded at creation, new ones with the patch's @context.
type patchNames struct {
	stored map[string]string
	req    names
}

func (p patchNames) Canon(t string) string {
	if c, ok := p.stored[t]; ok {
		return c
	}
	return p.req.Canon(t)
}

func (p patchNames) Term(n string) string { return p.req.Term(n) }

func (h *Handler) deleteSubscription(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := subscriptionTarget(r)
	if err != nil {
		return err
	}
	if err := h.opts.Subscriptions.Delete(r.Context(), tenant, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// subscriptionView is how a subscription is answered: media type, context,
// sysAttrs.
type subscriptionView struct {
	media    string
	ctx      *jsonld.Context
	sysAttrs bool
}

func (h *Handler) parseSubscriptionView(r *http.Request) (subscriptionView, error) {
	var v subscriptionView
	var err error
	if v.media, err = outputType(r, false); err != nil {
		return v, err
	}
	if v.ctx, err = h.linkContext(r.Context(), r); err != nil {
		return v, err
	}
	for _, o := range splitList(queryParams(r).Get("options")) {
		switch o {
		case "sysAttrs":
			v.sysAttrs = true
		case "count", "keyValues", "normalized", "concise":
		default:
			return v, &broker.Error{Kind: broker.ErrInvalidRequest, Detail: fmt.Sprintf("options: unknown option %q (sysAttrs, count)", o)}
		}
	}
	return v, nil
}

// subscriptionJSON is a subscription's answer: its members as sent, with
// the members the broker keeps (status, the notification counters).
func subscriptionJSON(sub *broker.Subscription, st broker.DeliveryStatus, v subscriptionView, now time.Time) map[string]any {
	out := make(map[string]any, len(sub.Doc())+6)
	for k, val := range sub.Doc() {
		out[k] = val
	}
	out["id"] = sub.ID
	out["type"] = "Subscription"
	if v.media != mediaLD {
		// As JSON, with the request's @context in the Link header; as
		// JSON-LD the answer carries the @context the members were sent with.
		recompactSubscription(out, sub.Terms(), names{v.ctx})
	}
	// isActive is shown as sent (default true): status tells whether the
	// subscription is paused. notificationTrigger shows the defaults.
	if _, ok := out["notificationTrigger"]; !ok && len(sub.Triggers) > 0 {
		out["notificationTrigger"] = sub.Triggers
	}
	out["status"] = sub.Status(now)
	n := map[string]any{}
	if nm, ok := out["notification"].(map[string]any); ok {
		for k, val := range nm {
			n[k] = val
		}
	}
	if _, ok := n["format"]; !ok {
		n["format"] = "normalized"
	}
	if ep, ok := n["endpoint"].(map[string]any); ok {
		if _, has := ep["accept"]; !has {
			e := make(map[string]any, len(ep)+1)
			for k, val := range ep {
				e[k] = val
			}
			e["accept"] = sub.Notification.Endpoint.Accept
			n["endpoint"] = e
		}
	}
	// The counters show once they count something (clause 5.2.14: 0..1).
	if st.TimesSent > 0 {
		n["timesSent"] = st.TimesSent
	}
	if st.TimesFailed > 0 {
		n["timesFailed"] = st.TimesFailed
	}
	// status is the outcome of the last attempt (clause 5.2.14): none
	// before the first one.
	if !st.LastNotification.IsZero() || st.TimesSent+st.TimesFailed > 0 {
		status := "ok"
		if st.Failing() {
			status = "failed"
		}
		n["status"] = status
	}
	for k, t := range map[string]time.Time{"lastNotification": st.LastNotification, "lastSuccess": st.LastSuccess, "lastFailure": st.LastFailure} {
		if !t.IsZero() {
			n[k] = t.UTC().Format(broker.TimeFormat)
		}
	}
	out["notification"] = n
	if v.sysAttrs {
		out["createdAt"] = sub.CreatedAt.UTC().Format(broker.TimeFormat)
		out["modifiedAt"] = sub.ModifiedAt.UTC().Format(broker.TimeFormat)
	}
	if v.media == mediaLD {
		ctx := sub.Context
		if ctx == nil {
			ctx = jsonld.CoreContextURL
		}
		out["@context"] = ctx
	}
	return out
}

func (h *Handler) getSubscription(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := subscriptionTarget(r)
	if err != nil {
		return err
	}
	v, err := h.parseSubscriptionView(r)
	if err != nil {
		return err
	}
	sub, err := h.opts.Subscriptions.Get(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	st, err := h.opts.Subscriptions.Status(r.Context(), tenant, id)
	if err != nil {
		return err
	}
	return h.writeSubscriptionJSON(w, v, http.StatusOK, subscriptionJSON(sub, st, v, time.Now()))
}

func (h *Handler) writeSubscriptionJSON(w http.ResponseWriter, v subscriptionView, status int, body any) error {
	if v.media == mediaJSON {
		w.Header().Add("Link", contextLink(v.ctx))
	}
	if err := writeJSON(w, status, body); err != nil {
		return err
	}
	return nil
}

// pageParams reads limit (default 20) and offset.
func pageParams(r *http.Request, maxLimit int) (limit, offset int, err error) {
	q := queryParams(r)
	limit = defaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, 0, badParam("limit: %q is not a non-negative integer", s)
		}
		if n > maxLimit {
			return 0, 0, &broker.Error{Kind: broker.ErrTooManyResults, Detail: fmt.Sprintf("limit %d is over the maximum of %d", n, maxLimit)}
		}
		limit = n
	}
	if s := q.Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return 0, 0, badParam("offset: %q is not a non-negative integer", s)
		}
		offset = n
	}
	return limit, offset, nil
}

func wantCount(r *http.Request) (bool, error) {
	q := queryParams(r)
	count := false
	for _, o := range splitList(q.Get("options")) {
		count = count || o == "count"
	}
	if c := q.Get("count"); c != "" {
		b, err := strconv.ParseBool(c)
		if err != nil {
			return false, badParam("count: %q is not true or false", c)
		}
		count = count || b
	}
	return count, nil
}

func (h *Handler) listSubscriptions(w http.ResponseWriter, r *http.Request) error {
	tenant, err := tenantOf(r)
	if err != nil {
		return err
	}
	v, err := h.parseSubscriptionView(r)
	if err != nil {
		return err
	}
	limit, offset, err := pageParams(r, maxSubscriptionPage)
	if err != nil {
		return err
	}
	count, err := wantCount(r)
	if err != nil {
		return err
	}
	if limit == 0 && !count {
		return badParam("limit=0 is only allowed with count=true")
	}
	subs, err := h.opts.Subscriptions.List(r.Context(), tenant)
	if err != nil {
		return err
	}
	if count {
		w.Header().Set("NGSILD-Results-Count", strconv.Itoa(len(subs)))
	}
	subscriptionPagingLinks(w, r, limit, offset, len(subs), v.media)
	page := subs[min(offset, len(subs)):min(offset+limit, len(subs))]
	out := make([]any, 0, len(page))
	now := time.Now()
	for _, sub := range page {
		st, err := h.opts.Subscriptions.Status(r.Context(), tenant, sub.ID)
		if err != nil {
			return err
		}
		out = append(out, subscriptionJSON(sub, st, v, now))
	}
	return h.writeSubscriptionJSON(w, v, http.StatusOK, out)
}

func (h *Handler) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	tenant, id, err := subscriptionTarget(r)
	if err != nil {
		return err
	}
	limit, offset, err := pageParams(r, maxSubscriptionPage)
	if err != nil {
		return err
	}
	dls, total, err := h.opts.Subscriptions.DeadLetters(r.Context(), tenant, id, offset, limit)
	if err != nil {
		return err
	}
	w.Header().Set("NGSILD-Results-Count", strconv.Itoa(total))
	if dls == nil {
		dls = []broker.DeadLetter{}
	}
	return writeJSON(w, http.StatusOK, dls)
}

// subscriptionPagingLinks sets the Link headers rel="prev" and rel="next"
// of a page of subscriptions (clause 4.12), written as the ETSI suite
// compares them: </ngsi-ld/v1/subscriptions?limit=1&offset=0>;rel="prev";type="...".
func subscriptionPagingLinks(w http.ResponseWriter, r *http.Request, limit, offset, total int, media string) {
	if limit <= 0 {
		return
	}
	link := func(off int, rel string) {
		params := queryParams(r)
		params.Set("offset", strconv.Itoa(off))
		params.Set("limit", strconv.Itoa(limit))
		var sb strings.Builder
		for _, k := range sortedKeys(params) {
			for _, val := range params[k] {
				if sb.Len() > 0 {
					sb.WriteByte('&')
				}
				sb.WriteString(linkEscape(k) + "=" + linkEscape(val))
			}
		}
		path := strings.TrimSuffix(r.URL.EscapedPath(), "/")
		w.Header().Add("Link", fmt.Sprintf(`<%s?%s>;rel="%s";type="%s"`, path, sb.String(), rel, media))
	}
	if offset > 0 {
		link(max(0, offset-limit), "prev")
	}
	if offset+limit < total {
		link(offset+limit, "next")
	}
}

// recompactSubscription writes the entity types and attribute names of a
// subscription's members (as sent, with the terms of the @context it was
// sent with) with the terms of the request's @context: without one, a
// type the creator's @context defined shows as its IRI (clause 5.8.2).
func recompactSubscription(out map[string]any, terms map[string]string, n names) {
	term := func(v any) any {
		str, ok := v.(string)
		if !ok {
			return v
		}
		var sb strings.Builder
		start := 0
		flush := func(end int) {
			if tok := str[start:end]; tok != "" {
				canon := tok
				if c, ok := terms[tok]; ok {
					canon = c
				}
				sb.WriteString(n.Term(canon))
			}
		}
		for i := 0; i < len(str); i++ {
			if strings.IndexByte(",;|()", str[i]) >= 0 {
				flush(i)
				sb.WriteByte(str[i])
				start = i + 1
			}
		}
		flush(len(str))
		return sb.String()
	}
	list := func(v any) any {
		l, ok := v.([]any)
		if !ok {
			return v
		}
		o := make([]any, len(l))
		for i, x := range l {
			o[i] = term(x)
		}
		return o
	}
	if es, ok := out["entities"].([]any); ok {
		o := make([]any, len(es))
		for i, e := range es {
			m, ok := e.(map[string]any)
			if !ok || m["type"] == nil {
				o[i] = e
				continue
			}
			c := make(map[string]any, len(m))
			for k, x := range m {
				c[k] = x
			}
			c["type"] = term(m["type"])
			o[i] = c
		}
		out["entities"] = o
	}
	if w, ok := out["watchedAttributes"]; ok {
		out["watchedAttributes"] = list(w)
	}
	if nm, ok := out["notification"].(map[string]any); ok {
		if a, ok := nm["attributes"]; ok {
			c := make(map[string]any, len(nm))
			for k, x := range nm {
				c[k] = x
			}
			c["attributes"] = list(a)
			out["notification"] = c
		}
	}
}
