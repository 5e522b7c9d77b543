package broker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// This file is the NGSI-LD Subscription (GS CIM 009 V1.9.1 clauses 5.2.12,
// 5.2.14 NotificationParams and 5.2.15 Endpoint): its model and the one
// parser that reads it from a request body, from a PATCH merged into the
// stored members, and from the store itself.

// Notification triggers (clause 5.2.12, notificationTrigger).
const (
	TriggerEntityCreated    = "entityCreated"
	TriggerEntityUpdated    = "entityUpdated"
	TriggerEntityDeleted    = "entityDeleted"
	TriggerAttributeCreated = "attributeCreated"
	TriggerAttributeUpdated = "attributeUpdated"
	TriggerAttributeDeleted = "attributeDeleted"
)

var knownTriggers = []string{TriggerEntityCreated, TriggerEntityUpdated, TriggerEntityDeleted,
	TriggerAttributeCreated, TriggerAttributeUpdated, TriggerAttributeDeleted}

// defaultTriggers apply when a subscription names none (clause 5.2.12).
var defaultTriggers = []string{TriggerAttributeCreated, TriggerAttributeUpdated}

// Subscription status values (clause 5.2.12, status).
const (
	StatusActive  = "active"
	StatusPaused  = "paused"
	StatusExpired = "expired"
)

// Endpoint schemes a notification can be delivered to.
var endpointSchemes = []string{"http", "https", "mqtt", "mqtts", "nats"}

// Subscription is a parsed NGSI-LD subscription of one tenant. Names
// (types, attributes, q terms) are canonical. A Subscription is immutable
// once parsed: a PATCH parses a new one. It is safe for concurrent reads.
type Subscription struct {
	ID     string
	Tenant string
	// Entities select the entities watched; any of them may match.
	Entities          []EntitySelector
	WatchedAttributes []string
	// Triggers are the notification triggers (the defaults when none is given).
	Triggers     []string
	TimeInterval time.Duration // periodic subscription when > 0
	Q            *QExpr
	Geo          *GeoQuery
	Scope        *ScopeQuery
	Lang         string
	// DatasetIDs, if not empty, select the attribute instances notified
	// (clause 4.5.5): those with one of these datasetIds, "@none" naming
	// the default instance.
	DatasetIDs []string
	IsActive   bool
	ExpiresAt  time.Time // zero: never
	Throttling time.Duration
	// JSONLDContext is the @context URI notifications are compacted with;
	// Context is the @context of the request that created the subscription,
	// used when JSONLDContext is empty.
	JSONLDContext string
	Context       any
	Notification  NotificationParams
	CreatedAt     time.Time
	ModifiedAt    time.Time
	// Since is the tenant stream's last sequence when the subscription was
	// created: only later changes are notified.
	Since uint64

	doc   map[string]any    // the members as the client sent them
	terms map[string]string // term -> canonical name, for every term parsed
}

// NotificationParams say what a notification carries and where it goes.
type NotificationParams struct {
	// Attributes keeps only these canonical attribute names (nil: all).
	Attributes []string
	// Pick and Omit are the raw pick/omit member selections (the API applies them).
	Pick, Omit  string
	Format      Format
	ShowChanges bool
	SysAttrs    bool
	Endpoint    Endpoint
	// Join is "flat" or "inline" to show the entities the notified ones'
	// relationships name, JoinLevel hops deep (clause 4.5.23); "" for none.
	Join      string
	JoinLevel int
}

// MaxJoinLevel bounds notification.joinLevel.
const MaxJoinLevel = 10

// Endpoint is where notifications are delivered (clause 5.2.15).
type Endpoint struct {
	URI    *url.URL
	Accept string // application/json (default), application/ld+json, application/geo+json
	// Timeout bounds one delivery attempt; Cooldown is the wait after a
	// failure before the next attempt (0: the notifier's defaults).
	Timeout, Cooldown time.Duration
	ReceiverInfo      []KeyValue
	NotifierInfo      []KeyValue
}

// KeyValue is one key-value pair of receiverInfo or notifierInfo.
type KeyValue struct {
	Key, Value string
}

// Scheme is the endpoint's URI scheme, lower case.
func (e Endpoint) Scheme() string { return strings.ToLower(e.URI.Scheme) }

// Doc returns the subscription's members as the client sent them (terms
// of its @context), without the system-kept ones. The map must not be modified.
func (s *Subscription) Doc() map[string]any { return s.doc }

// Status returns active, paused or expired at time now.
func (s *Subscription) Status(now time.Time) string {
	switch {
	case !s.ExpiresAt.IsZero() && !now.Before(s.ExpiresAt):
		return StatusExpired
	case !s.IsActive:
		return StatusPaused
	}
	return StatusActive
}

// Periodic reports whether the subscription notifies every TimeInterval
// instead of on changes.
func (s *Subscription) Periodic() bool { return s.TimeInterval > 0 }

// HasTrigger reports whether the subscription fires on trigger t.
func (s *Subscription) HasTrigger(t string) bool { return slices.Contains(s.Triggers, t) }

// SubscriptionParseOptions say how to read a subscription.
type SubscriptionParseOptions struct {
	// Names resolves the request's terms (nil: CanonicalNames).
	Names Names
	// AllowedHosts, if not empty, are the only notification hosts allowed
	// (see HostAllowed).
	AllowedHosts []string
	// Now is the time of the request (expiresAt must be after it); zero
	// skips the check (the store reads subscriptions that have expired).
	Now time.Time
}

// recordingNames remembers every term it canonicalises.
type recordingNames struct {
	n     Names
	terms map[string]string
}

func (r *recordingNames) Canon(t string) string {
	c := r.n.Canon(t)
	r.terms[t] = c
	return c
}

func (r *recordingNames) Term(n string) string { return r.n.Term(n) }

// recordedNames resolves terms with a recorded map (the identity for others).
type recordedNames map[string]string

func (m recordedNames) Canon(t string) string {
	if c, ok := m[t]; ok {
		return c
	}
	return t
}

func (m recordedNames) Term(n string) string { return n }

// maxSubscriptionItems bounds the lists of a subscription (entities,
// watched attributes, attributes, receiverInfo...).
const maxSubscriptionItems = 1000

// ParseSubscription reads a subscription from its decoded JSON object. A
// missing id is generated. An invalid subscription is an *Error of kind
// ErrBadRequestData whose Detail names the member and the problem. The
// "@context" member, if any, is ignored: the caller resolves it into Names.
func ParseSubscription(v any, o SubscriptionParseOptions) (*Subscription, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, badData("a subscription must be a JSON object, got %s", jsonKind(v))
	}
	if o.Names == nil {
		o.Names = CanonicalNames
	}
	rn := &recordingNames{n: o.Names, terms: map[string]string{}}
	s := &Subscription{IsActive: true, doc: map[string]any{}, terms: rn.terms}
	for k, val := range m {
		switch k {
		case "@context", "status", "createdAt", "modifiedAt":
			continue // resolved by the caller, or kept by the broker
		}
		s.doc[k] = val
	}
	if err := s.parse(m, rn, o); err != nil {
		return nil, err
	}
	return s, nil
}

func subErr(member, format string, args ...any) *Error {
	return badData("subscription: "+member+": "+format, args...)
}

func (s *Subscription) parse(m map[string]any, names Names, o SubscriptionParseOptions) error {
	for k := range m {
		switch k {
		case "id", "type", "subscriptionName", "description", "entities", "watchedAttributes",
			"notificationTrigger", "timeInterval", "q", "geoQ", "scopeQ", "lang", "isActive",
			"expiresAt", "throttling", "jsonldContext", "notification", "status", "@context",
			"createdAt", "modifiedAt", "localOnly":
		case "datasetId":
		case "csf", "temporalQ":
			return &Error{Kind: ErrOperationNotSupported, Detail: fmt.Sprintf("subscription: %s is not supported by this broker", k)}
		default:
			return subErr(k, "unknown member (see GS CIM 009 clause 5.2.12)")
		}
	}
	if idv, has := m["id"]; has {
		id, ok := idv.(string)
		if !ok || !ValidURI(id) {
			return subErr("id", "must be a URI, got %s", describeJSON(idv))
		}
		s.ID = id
	} else {
		s.ID = newSubscriptionID()
	}
	switch t := m["type"].(type) {
	case string:
		if t != "Subscription" {
			return subErr("type", "must be \"Subscription\", got %q", t)
		}
	case nil:
		if _, has := m["type"]; has {
			return subErr("type", "must be \"Subscription\", got null")
		}
		return subErr("type", "missing: a subscription needs \"type\": \"Subscription\"")
	default:
		return subErr("type", "must be \"Subscription\", got %s", jsonKind(t))
	}
	for _, k := range []string{"subscriptionName", "description"} {
		if v, has := m[k]; has {
			if _, ok := v.(string); !ok {
				return subErr(k, "must be a string, got %s", jsonKind(v))
			}
		}
	}
	if v, has := m["entities"]; has {
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			return subErr("entities", "must be a non-empty array of entity selectors")
		}
		if len(arr) > maxSubscriptionItems {
			return subErr("entities", "more than %d selectors", maxSubscriptionItems)
		}
		for i, x := range arr {
			es, err := parseSubEntity(x, names)
			if err != nil {
				return subErr(fmt.Sprintf("entities[%d]", i), "%s", err.Error())
			}
			s.Entities = append(s.Entities, es)
		}
	}
	if v, has := m["watchedAttributes"]; has {
		list, err := nameList(v, names)
		if err != nil {
			return subErr("watchedAttributes", "%s", err.Error())
		}
		if len(list) == 0 {
			return subErr("watchedAttributes", "must not be empty")
		}
		s.WatchedAttributes = list
	}
	if len(s.Entities) == 0 && len(s.WatchedAttributes) == 0 {
		return subErr("entities", "a subscription needs entities or watchedAttributes (or both)")
	}
	if v, has := m["notificationTrigger"]; has {
		arr, ok := v.([]any)
		if !ok || len(arr) == 0 {
			return subErr("notificationTrigger", "must be a non-empty array of triggers (%s)", strings.Join(knownTriggers, ", "))
		}
		for _, x := range arr {
			t, _ := x.(string)
			if !slices.Contains(knownTriggers, t) {
				return subErr("notificationTrigger", "%s is not a trigger (%s)", describeJSON(x), strings.Join(knownTriggers, ", "))
			}
			if !slices.Contains(s.Triggers, t) {
				s.Triggers = append(s.Triggers, t)
			}
		}
	} else {
		s.Triggers = append([]string(nil), defaultTriggers...)
	}
	if v, has := m["timeInterval"]; has {
		d, err := seconds(v)
		if err != nil || d <= 0 {
			return subErr("timeInterval", "must be a positive number of seconds, got %s", describeJSON(v))
		}
		if d < 100*time.Millisecond {
			return subErr("timeInterval", "must be at least 0.1 seconds")
		}
		if _, w := m["watchedAttributes"]; w {
			return subErr("timeInterval", "a periodic subscription cannot have watchedAttributes")
		}
		if _, w := m["throttling"]; w {
			return subErr("timeInterval", "a periodic subscription cannot have throttling")
		}
		s.TimeInterval = d
	}
	if v, has := m["q"]; has {
		str, ok := v.(string)
		if !ok {
			return subErr("q", "must be a string, got %s", jsonKind(v))
		}
		// A q copied from a URL may keep its percent-encoding (the ETSI
		// suite sends name=="Eiffel%20Tower"): decode it as the query
		// string would be.
		if strings.Contains(str, "%") {
			if dec, err := url.PathUnescape(str); err == nil {
				str = dec
			}
		}
		q, err := ParseQ(str, names)
		if err != nil {
			return subErr("q", "%s", Detail(err))
		}
		s.Q = q
	}
	if v, has := m["datasetId"]; has {
		ids, err := datasetIDs(v)
		if err != nil {
			return err
		}
		s.DatasetIDs = ids
	}
	if v, has := m["geoQ"]; has {
		g, err := parseSubGeoQ(v, names)
		if err != nil {
			return err
		}
		s.Geo = g
	}
	if v, has := m["scopeQ"]; has {
		str, ok := v.(string)
		if !ok {
			return subErr("scopeQ", "must be a string, got %s", jsonKind(v))
		}
		sq, err := ParseScopeQ(str)
		if err != nil {
			return subErr("scopeQ", "%s", Detail(err))
		}
		s.Scope = sq
	}
	if v, has := m["lang"]; has {
		str, ok := v.(string)
		if !ok || strings.TrimSpace(str) == "" || strings.ContainsAny(str, " {}\"<>") {
			return subErr("lang", "must be a language tag (or a comma-separated list), got %s", describeJSON(v))
		}
		s.Lang = str
	}
	if v, has := m["isActive"]; has {
		b, ok := v.(bool)
		if !ok {
			return subErr("isActive", "must be true or false, got %s", describeJSON(v))
		}
		s.IsActive = b
	}
	if v, has := m["expiresAt"]; has {
		str, _ := v.(string)
		t, err := parseDateTime(str)
		if err != nil {
			return subErr("expiresAt", "must be a DateTime (ISO 8601 with a time zone), got %s", describeJSON(v))
		}
		if !o.Now.IsZero() && !t.After(o.Now) {
			return subErr("expiresAt", "%s is in the past", str)
		}
		s.ExpiresAt = t
	}
	if v, has := m["throttling"]; has {
		d, err := seconds(v)
		if err != nil || d <= 0 {
			return subErr("throttling", "must be a positive number of seconds, got %s", describeJSON(v))
		}
		s.Throttling = d
	}
	if v, has := m["jsonldContext"]; has {
		str, ok := v.(string)
		if !ok || !ValidURI(str) {
			return subErr("jsonldContext", "must be a URI, got %s", describeJSON(v))
		}
		s.JSONLDContext = str
	}
	if v, has := m["localOnly"]; has {
		if _, ok := v.(bool); !ok {
			return subErr("localOnly", "must be true or false, got %s", describeJSON(v))
		}
	}
	nv, has := m["notification"]
	if !has {
		return subErr("notification", "missing: a subscription needs notification.endpoint.uri")
	}
	np, err := parseNotificationParams(nv, names, o)
	if err != nil {
		return err
	}
	s.Notification = np
	return nil
}

// datasetIDs reads a subscription's datasetId: a URI or an array of them
// ("@none" is the default instance).
func datasetIDs(v any) ([]string, error) {
	var l []any
	switch x := v.(type) {
	case string:
		l = []any{x}
	case []any:
		l = x
	default:
		return nil, subErr("datasetId", "must be a URI or an array of URIs, got %s", describeJSON(v))
	}
	ids := make([]string, 0, len(l))
	for _, e := range l {
		str, ok := e.(string)
		if !ok || str != "@none" && !ValidURI(str) {
			return nil, subErr("datasetId", "must be URIs (or @none), got %s", describeJSON(e))
		}
		ids = append(ids, str)
	}
	if len(ids) == 0 {
		return nil, subErr("datasetId", "must not be an empty array")
	}
	return ids, nil
}

// SelectDatasets returns e with only the attribute instances the
// subscription's datasetId selects (e itself when it has none); attributes
// left without an instance are dropped. e is not modified.
func (s *Subscription) SelectDatasets(e *Entity) *Entity {
	if len(s.DatasetIDs) == 0 || e == nil {
		return e
	}
	out := *e
	out.Attrs = make(map[string]Instances, len(e.Attrs))
	for name, is := range e.Attrs {
		var kept Instances
		for _, a := range is {
			id := a.DatasetID
			if id == "" {
				id = "@none"
			}
			if slices.Contains(s.DatasetIDs, id) {
				kept = append(kept, a)
			}
		}
		if len(kept) > 0 {
			out.Attrs[name] = kept
		}
	}
	return &out
}

func parseSubEntity(v any, names Names) (EntitySelector, error) {
	var es EntitySelector
	m, ok := v.(map[string]any)
	if !ok {
		return es, fmt.Errorf("must be an object with id, idPattern or type, got %s", jsonKind(v))
	}
	for k := range m {
		switch k {
		case "id", "idPattern", "type":
		default:
			return es, fmt.Errorf("unknown member %q (id, idPattern, type)", k)
		}
	}
	tv, has := m["type"]
	ts, ok := tv.(string)
	if !has || !ok || ts == "" {
		return es, fmt.Errorf("type: an entity selector needs a type (a string), got %s", describeJSON(tv))
	}
	sel, err := ParseTypeSelection(ts, names)
	if err != nil {
		return es, fmt.Errorf("type: %s", Detail(err))
	}
	if !sel.All() {
		es.Types = sel
	}
	if v, has := m["id"]; has {
		id, ok := v.(string)
		if !ok || !ValidURI(id) {
			return es, fmt.Errorf("id: must be a URI, got %s", describeJSON(v))
		}
		es.ID = id
	}
	if v, has := m["idPattern"]; has {
		p, ok := v.(string)
		if !ok {
			return es, fmt.Errorf("idPattern: must be a string, got %s", jsonKind(v))
		}
		re, err := CompileRegexp("idPattern", p)
		if err != nil {
			return es, fmt.Errorf("%s", Detail(err))
		}
		es.IDPattern = re
	}
	return es, nil
}

func parseSubGeoQ(v any, names Names) (*GeoQuery, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, subErr("geoQ", "must be an object with geometry, coordinates and georel, got %s", jsonKind(v))
	}
	str := func(k string) (string, error) {
		x, has := m[k]
		if !has {
			return "", nil
		}
		s, ok := x.(string)
		if !ok {
			return "", subErr("geoQ."+k, "must be a string, got %s", jsonKind(x))
		}
		return s, nil
	}
	for k := range m {
		switch k {
		case "geometry", "coordinates", "georel", "geoproperty":
		default:
			return nil, subErr("geoQ", "unknown member %q (geometry, coordinates, georel, geoproperty)", k)
		}
	}
	geometry, err := str("geometry")
	if err != nil {
		return nil, err
	}
	georel, err := str("georel")
	if err != nil {
		return nil, err
	}
	gp, err := str("geoproperty")
	if err != nil {
		return nil, err
	}
	if georel == "" || geometry == "" {
		return nil, subErr("geoQ", "needs georel, geometry and coordinates")
	}
	coords, has := m["coordinates"]
	if !has {
		return nil, subErr("geoQ.coordinates", "missing")
	}
	if cs, ok := coords.(string); ok {
		if coords, err = decodeCoordinates(cs); err != nil {
			return nil, subErr("geoQ.coordinates", "%s", Detail(err))
		}
	}
	g, err := ParseGeoQueryJSON(georel, geometry, coords, gp, names)
	if err != nil {
		return nil, subErr("geoQ", "%s", Detail(err))
	}
	return g, nil
}

func parseNotificationParams(v any, names Names, o SubscriptionParseOptions) (NotificationParams, error) {
	var np NotificationParams
	m, ok := v.(map[string]any)
	if !ok {
		return np, subErr("notification", "must be an object, got %s", jsonKind(v))
	}
	for k := range m {
		switch k {
		case "attributes", "pick", "omit", "format", "showChanges", "sysAttrs", "endpoint",
			// kept by the broker; ignored on input
			"status", "timesSent", "timesFailed", "lastNotification", "lastFailure", "lastSuccess":
		case "join", "joinLevel":
		default:
			return np, subErr("notification", "unknown member %q", k)
		}
	}
	if a, has := m["attributes"]; has {
		list, err := nameList(a, names)
		if err != nil {
			return np, subErr("notification.attributes", "%s", err.Error())
		}
		np.Attributes = list
	}
	for _, k := range []string{"pick", "omit"} {
		x, has := m[k]
		if !has {
			continue
		}
		var s string
		switch t := x.(type) {
		case string:
			s = t
		case []any:
			parts := make([]string, 0, len(t))
			for _, p := range t {
				ps, ok := p.(string)
				if !ok {
					return np, subErr("notification."+k, "must be a string or an array of strings")
				}
				parts = append(parts, ps)
			}
			s = strings.Join(parts, ",")
		default:
			return np, subErr("notification."+k, "must be a string or an array of strings, got %s", jsonKind(x))
		}
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t<>\"'=;()\\[]") {
			return np, subErr("notification."+k, "%q is not a list of member names", s)
		}
		for _, name := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '{' || r == '}' }) {
			if name != "id" && name != "type" && name != "scope" {
				names.Canon(name) // recorded for the renderer
			}
		}
		if k == "pick" {
			np.Pick = s
		} else {
			np.Omit = s
		}
	}
	if np.Pick != "" && np.Omit != "" {
		return np, subErr("notification", "pick and omit cannot be combined")
	}
	if np.Attributes != nil && (np.Pick != "" || np.Omit != "") {
		return np, subErr("notification", "attributes cannot be combined with pick or omit")
	}
	if j, has := m["join"]; has {
		switch j {
		case "flat", "inline":
			np.Join, np.JoinLevel = j.(string), 1
		case "@none":
		default:
			return np, subErr("notification.join", "%s is not flat, inline or @none", describeJSON(j))
		}
	}
	if jl, has := m["joinLevel"]; has {
		n, ok := numberValue(jl)
		if !ok || n != math.Trunc(n) || n < 1 || n > MaxJoinLevel {
			return np, subErr("notification.joinLevel", "must be an integer from 1 to %d, got %s", MaxJoinLevel, describeJSON(jl))
		}
		if np.Join != "" {
			np.JoinLevel = int(n)
		}
	}
	if f, has := m["format"]; has {
		switch f {
		case "normalized":
			np.Format = Normalized
		case "keyValues", "simplified":
			np.Format = Simplified
		case "concise":
			np.Format = Concise
		default:
			return np, subErr("notification.format", "%s is not normalized, concise, keyValues or simplified", describeJSON(f))
		}
	}
	for _, k := range []string{"showChanges", "sysAttrs"} {
		if x, has := m[k]; has {
			b, ok := x.(bool)
			if !ok {
				return np, subErr("notification."+k, "must be true or false, got %s", describeJSON(x))
			}
			if k == "showChanges" {
				np.ShowChanges = b
			} else {
				np.SysAttrs = b
			}
		}
	}
	ev, has := m["endpoint"]
	if !has {
		return np, subErr("notification.endpoint", "missing: a subscription needs notification.endpoint.uri")
	}
	ep, err := parseEndpoint(ev, o)
	if err != nil {
		return np, err
	}
	np.Endpoint = ep
	return np, nil
}

func parseEndpoint(v any, o SubscriptionParseOptions) (Endpoint, error) {
	var ep Endpoint
	m, ok := v.(map[string]any)
	if !ok {
		return ep, subErr("notification.endpoint", "must be an object with uri, got %s", jsonKind(v))
	}
	for k := range m {
		switch k {
		case "uri", "accept", "timeout", "cooldown", "receiverInfo", "notifierInfo":
		default:
			return ep, subErr("notification.endpoint", "unknown member %q (uri, accept, timeout, cooldown, receiverInfo, notifierInfo)", k)
		}
	}
	raw, _ := m["uri"].(string)
	if raw == "" {
		return ep, subErr("notification.endpoint.uri", "missing or not a string")
	}
	u, err := url.Parse(raw)
	if err != nil || !ValidURI(raw) {
		return ep, subErr("notification.endpoint.uri", "%q is not a URI", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if !slices.Contains(endpointSchemes, scheme) {
		return ep, subErr("notification.endpoint.uri", "scheme %q is not supported (http, https, mqtt, mqtts, nats)", u.Scheme)
	}
	switch scheme {
	case "http", "https", "mqtt", "mqtts":
		if u.Hostname() == "" {
			return ep, subErr("notification.endpoint.uri", "%q has no host", raw)
		}
	}
	if (scheme == "mqtt" || scheme == "mqtts" || scheme == "nats") && strings.Trim(u.Path, "/") == "" {
		return ep, subErr("notification.endpoint.uri", "%q names no topic or subject (its path)", raw)
	}
	if scheme == "nats" {
		for _, tok := range strings.Split(natsSubjectOf(u), ".") {
			if tok == "" || strings.ContainsAny(tok, "*> \t\r\n") {
				return ep, subErr("notification.endpoint.uri", "%q does not name a NATS subject (nats:///a/b publishes on a.b)", raw)
			}
		}
	}
	if h := u.Hostname(); h != "" && !HostAllowed(h, o.AllowedHosts) {
		return ep, subErr("notification.endpoint.uri", "host %q is not in the allowed notification hosts", h)
	}
	ep.URI = u
	ep.Accept = "application/json"
	if a, has := m["accept"]; has {
		switch a {
		case "application/json", "application/ld+json", "application/geo+json":
			ep.Accept = a.(string)
		default:
			return ep, subErr("notification.endpoint.accept", "%s is not application/json, application/ld+json or application/geo+json", describeJSON(a))
		}
	}
	for _, k := range []string{"timeout", "cooldown"} {
		x, has := m[k]
		if !has {
			continue
		}
		f, ok := numberValue(x)
		if !ok || f <= 0 || f > 24*3600*1000 || math.IsNaN(f) {
			return ep, subErr("notification.endpoint."+k, "must be a positive number of milliseconds, got %s", describeJSON(x))
		}
		d := time.Duration(f * float64(time.Millisecond))
		if k == "timeout" {
			ep.Timeout = d
		} else {
			ep.Cooldown = d
		}
	}
	for _, k := range []string{"receiverInfo", "notifierInfo"} {
		x, has := m[k]
		if !has {
			continue
		}
		kvs, err := parseKeyValues(x)
		if err != nil {
			return ep, subErr("notification.endpoint."+k, "%s", err.Error())
		}
		if k == "receiverInfo" {
			for _, kv := range kvs {
				if !validHeaderName(kv.Key) || strings.ContainsAny(kv.Value, "\r\n\x00") {
					return ep, subErr("notification.endpoint.receiverInfo", "%q cannot be sent as an HTTP header", kv.Key)
				}
			}
			ep.ReceiverInfo = kvs
		} else {
			ep.NotifierInfo = kvs
		}
	}
	for _, kv := range ep.NotifierInfo {
		if kv.Key == "MQTT-QoS" && kv.Value != "0" && kv.Value != "1" && kv.Value != "2" {
			return ep, subErr("notification.endpoint.notifierInfo", "MQTT-QoS must be 0, 1 or 2, got %q", kv.Value)
		}
	}
	return ep, nil
}

func parseKeyValues(v any) ([]KeyValue, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("must be an array of {\"key\", \"value\"} objects, got %s", jsonKind(v))
	}
	if len(arr) > maxSubscriptionItems {
		return nil, fmt.Errorf("more than %d pairs", maxSubscriptionItems)
	}
	out := make([]KeyValue, 0, len(arr))
	for i, x := range arr {
		m, _ := x.(map[string]any)
		k, ok1 := m["key"].(string)
		val, ok2 := m["value"].(string)
		if !ok1 || !ok2 || k == "" || len(m) != 2 {
			return nil, fmt.Errorf("[%d] must be {\"key\": string, \"value\": string}", i)
		}
		out = append(out, KeyValue{Key: k, Value: val})
	}
	return out, nil
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// nameList reads a non-empty array of attribute names into canonical names.
func nameList(v any, names Names) ([]string, error) {
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("must be an array of attribute names, got %s", jsonKind(v))
	}
	if len(arr) > maxSubscriptionItems {
		return nil, fmt.Errorf("more than %d names", maxSubscriptionItems)
	}
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		s, ok := x.(string)
		if !ok || !validName(s) {
			return nil, fmt.Errorf("%s is not an attribute name", describeJSON(x))
		}
		c := names.Canon(s)
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// seconds reads a JSON number of seconds.
func seconds(v any) (time.Duration, error) {
	f, ok := numberValue(v)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) || f > 365*24*3600 {
		return 0, fmt.Errorf("not a number of seconds")
	}
	return time.Duration(f * float64(time.Second)), nil
}

func parseDateTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.999999999Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not a DateTime")
}

// describe shows a JSON value in an error message, shortened.
func describeJSON(v any) string {
	if v == nil {
		return "null"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return jsonKind(v)
	}
	if len(b) > 60 {
		return string(b[:57]) + "..."
	}
	return string(b)
}

func newSubscriptionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "urn:ngsi-ld:Subscription:" + hex.EncodeToString(b[:])
}

// HostAllowed reports whether notifications may go to host under an
// allow-list. An empty list allows every host. An entry is a host name
// ("hooks.example.org", matched without regard to case), a wildcard for
// every name below a domain ("*.example.org"), an IP address, or an IP
// network in CIDR notation ("10.1.0.0/16", which matches IP literals).
func HostAllowed(host string, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	ip := net.ParseIP(host)
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		switch {
		case a == "":
		case strings.Contains(a, "/"):
			if _, n, err := net.ParseCIDR(a); err == nil && ip != nil && n.Contains(ip) {
				return true
			}
		case strings.HasPrefix(a, "*."):
			if strings.HasSuffix(host, a[1:]) && len(host) > len(a)-1 {
				return true
			}
		default:
			if aip := net.ParseIP(a); aip != nil && ip != nil {
				if aip.Equal(ip) {
					return true
				}
			} else if host == a {
				return true
			}
		}
	}
	return false
}

// MergeSubscriptionPatch returns the members of a subscription after a
// PATCH (clause 5.8.2): each member of the patch replaces the stored one
// whole (a notification member too, so it must carry its endpoint: the
// ETSI suite's 029_03_01), and null removes it. Neither argument is
// modified.
func MergeSubscriptionPatch(doc, patch map[string]any) map[string]any {
	out := make(map[string]any, len(doc)+len(patch))
	for k, v := range doc {
		out[k] = v
	}
	for k, v := range patch {
		switch {
		case k == "@context":
		case v == nil:
			delete(out, k)
		default:
			out[k] = v
		}
	}
	return out
}

// storedSubscription is the form a subscription is kept in, in NATS.
type storedSubscription struct {
	Version    int               `json:"v"`
	Tenant     string            `json:"tenant"`
	ID         string            `json:"id"`
	Doc        map[string]any    `json:"doc"`
	Context    any               `json:"context,omitempty"`
	Terms      map[string]string `json:"terms,omitempty"`
	CreatedAt  time.Time         `json:"createdAt"`
	ModifiedAt time.Time         `json:"modifiedAt"`
	Since      uint64            `json:"since"`
}

func (s *Subscription) encode() ([]byte, error) {
	doc := make(map[string]any, len(s.doc)+1)
	for k, v := range s.doc {
		doc[k] = v
	}
	doc["id"] = s.ID
	return json.Marshal(storedSubscription{Version: 1, Tenant: s.Tenant, ID: s.ID, Doc: doc, Context: s.Context,
		Terms: s.terms, CreatedAt: s.CreatedAt, ModifiedAt: s.ModifiedAt, Since: s.Since})
}

// decodeSubscription reads a stored subscription.
func decodeSubscription(data []byte) (*Subscription, error) {
	var st storedSubscription
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: stored subscription: %v", ErrInternal, err)
	}
	v, err := DecodeJSON(mustJSON(st.Doc))
	if err != nil {
		return nil, fmt.Errorf("%w: stored subscription: %v", ErrInternal, err)
	}
	s, err := ParseSubscription(v, SubscriptionParseOptions{Names: recordedNames(st.Terms)})
	if err != nil {
		return nil, fmt.Errorf("%w: stored subscription %s: %v", ErrInternal, st.ID, err)
	}
	s.Tenant, s.Context, s.CreatedAt, s.ModifiedAt, s.Since = st.Tenant, st.Context, st.CreatedAt, st.ModifiedAt, st.Since
	for k, c := range st.Terms {
		if _, ok := s.terms[k]; !ok {
			s.terms[k] = c
		}
	}
	return s, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte("null")
	}
	return b
}

// Terms returns the canonical names of the terms the subscription uses
// (a copy), sorted by term.
func (s *Subscription) Terms() map[string]string {
	out := make(map[string]string, len(s.terms))
	for k, v := range s.terms {
		out[k] = v
	}
	return out
}

// sortSubscriptions orders subscriptions by creation time, then id, so
// that GET /subscriptions pages in the order they were created.
func sortSubscriptions(ss []*Subscription) {
	sort.Slice(ss, func(i, j int) bool {
		if !ss[i].CreatedAt.Equal(ss[j].CreatedAt) {
			return ss[i].CreatedAt.Before(ss[j].CreatedAt)
		}
		return ss[i].ID < ss[j].ID
	})
}
