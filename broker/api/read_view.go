package api

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/piazza-city/piazza/broker"
	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// The read path of GET /entities/{id}: the key of the representation a view
// asks for, so that the broker keeps it with the entity's revision
// (broker.EntityView), and response headers without per-request work.

// plainSpecs are the keys of the views without attrs, projection or
// geometryProperty, by media (mediaIndex), format and sysAttrs: the common
// requests build no key.
var plainSpecs = func() (t [3][3][2]string) {
	for m := range t {
		for f := range t[m] {
			for s := range t[m][f] {
				t[m][f][s] = strconv.Itoa(m) + strconv.Itoa(f) + strconv.Itoa(s)
			}
		}
	}
	return t
}()

func mediaIndex(media string) int {
	switch media {
	case mediaLD:
		return 1
	case mediaGeoJSON:
		return 2
	}
	return 0
}

// key names the representation v writes of one entity: the context's names
// (a Context is immutable, so its pointer identifies its compaction) and
// every option that changes the bytes, the projection's parameters as the
// request wrote them. A view that joins linked entities depends on more
// than its entity: it has no key (render it directly).
func (v view) key() broker.ViewKey {
	k := broker.ViewKey{Names: names{v.ctx}}
	sys := 0
	if v.sysAttrs {
		sys = 1
	}
	if v.attrs == nil && v.geoProp == "location" && !v.inCollection && v.proj == nil {
		k.Spec = plainSpecs[mediaIndex(v.media)][v.format][sys]
		return k
	}
	// Every variable part is length-prefixed, so that no two different
	// views have one spec, whatever bytes a parameter holds.
	var b strings.Builder
	b.WriteString(plainSpecs[mediaIndex(v.media)][v.format][sys])
	field := func(s string) {
		b.WriteString(strconv.Itoa(len(s)))
		b.WriteByte(':')
		b.WriteString(s)
	}
	if v.inCollection {
		b.WriteString("c")
	}
	field(v.geoProp)
	if v.attrs != nil {
		attrs := make([]string, 0, len(v.attrs))
		for a := range v.attrs {
			attrs = append(attrs, a)
		}
		sort.Strings(attrs)
		b.WriteString("a")
		b.WriteString(strconv.Itoa(len(attrs)))
		b.WriteByte(';')
		for _, a := range attrs {
			field(a)
		}
	}
	if v.proj != nil {
		for _, p := range [...]string{"pick", "omit", "datasetId", "lang", "joinLevel"} {
			vs, ok := v.params[p]
			if !ok {
				continue
			}
			b.WriteString(p)
			b.WriteString(strconv.Itoa(len(vs)))
			b.WriteByte(';')
			for _, s := range vs {
				field(s)
			}
		}
	}
	k.Spec = b.String()
	return k
}

// render writes one entity in the view's representation into a new buffer;
// nil when a projection selects nothing of it. Not for joins.
func (v view) render(e *broker.Entity) []byte {
	if v.proj != nil {
		sel, picked := v.proj.sel()
		return v.proj.render(v, e, sel, picked, 0)
	}
	return v.appendEntity(make([]byte, 0, 1024), e)
}

// readParams is queryParams for readers: nil (which reads as empty) when
// the request has no query string. The values must not be modified.
func readParams(r *http.Request) url.Values {
	if r.URL.RawQuery == "" {
		return nil
	}
	return queryParams(r)
}

// Header values shared by every response that sends them: net/http only
// reads them, and Header.Add copies before appending (len == cap). They
// must never be modified in place.
var (
	headerJSON    = []string{mediaJSON}
	headerLD      = []string{mediaLD}
	headerGeoJSON = []string{mediaGeoJSON}
	headerCore    = []string{"<" + jsonld.CoreContextURL + `>; rel="` + jsonld.ContextRel + `"; type="application/ld+json"`}
)

// mediaHeader is the Content-Type header value of a response media type.
func mediaHeader(media string) []string {
	switch media {
	case mediaJSON:
		return headerJSON
	case mediaLD:
		return headerLD
	case mediaGeoJSON:
		return headerGeoJSON
	}
	return []string{media}
}

// linkHeader is the Link header value that carries c.
func linkHeader(c *jsonld.Context) []string {
	if c == jsonld.Core() {
		return headerCore
	}
	return []string{contextLink(c)}
}

// chunkingSize is the body size past which net/http sends a response
// without a Content-Length as chunks when the handler writes it at once (its
// bufferBeforeChunkingSize); below it net/http sets Content-Length itself.
const chunkingSize = 2048

// setContentLength sets Content-Length for a body net/http would otherwise
// chunk.
func setContentLength(w http.ResponseWriter, n int) {
	if n > chunkingSize {
		w.Header()["Content-Length"] = []string{strconv.Itoa(n)}
	}
}
