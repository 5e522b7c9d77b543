package schemas

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// models holds the Smart Data Models documents built into Piazza, laid out as
// models/<repository>/<path in repository>; models/SOURCES.md says where each
// file comes from and under which licence.
//
//go:embed models
var models embed.FS

// builtinModel names one embedded data model: its short type name, the
// smart-data-models repository and the folder of its schema.json.
type builtinModel struct {
	name string
	repo string
	dir  string
}

// builtinModels is the fixed list of embedded data models. The type IRI of each
// is read from its repository's context.jsonld at load.
var builtinModels = []builtinModel{
	{name: "AirQualityObserved", repo: "dataModel.Environment", dir: "AirQualityObserved"},
	{name: "CarbonFootprint", repo: "dataModel.Environment", dir: "CarbonFootprint"},
	{name: "KeyPerformanceIndicator", repo: "dataModel.KeyPerformanceIndicator", dir: "KeyPerformanceIndicator"},
	{name: "Observation", repo: "dataModel.SDMX", dir: "Observation"},
	{name: "service_requests", repo: "dataModel.IssueTracking", dir: "service_requests"},
	{name: "PublicService", repo: "dataModel.CPSV-AP", dir: "PublicService"},
	{name: "PointOfInterest", repo: "dataModel.PointOfInterest", dir: "PointOfInterest"},
}

// supportDocs are the embedded documents that the models $ref but that are
// not models themselves.
var supportDocs = []string{
	"data-models/common-schema.json",
	"dataModel.Environment/Environment-schema.json",
}

// contextRepos are the repositories whose context.jsonld is embedded.
var contextRepos = []string{
	"dataModel.CPSV-AP",
	"dataModel.Environment",
	"dataModel.IssueTracking",
	"dataModel.KeyPerformanceIndicator",
	"dataModel.PointOfInterest",
	"dataModel.SDMX",
}

const (
	// sdmPagesBase is where the Smart Data Models publish their repositories
	// (GitHub pages); the schemas' $id and most $refs use it.
	sdmPagesBase = "https://smart-data-models.github.io/"
	// sdmRawBase is the raw.githubusercontent.com prefix of the same
	// repositories; some $refs and @context links use it.
	sdmRawBase = "https://raw.githubusercontent.com/smart-data-models/"
	// DefaultContextIRI is the NGSI-LD default vocabulary: a type term that the
	// core @context does not define expands to this prefix plus the term.
	DefaultContextIRI = "https://uri.etsi.org/ngsi-ld/default-context/"
)

// Contexts returns the Smart Data Models @context documents built into
// Piazza, keyed by every URL under which they are published
// (https://raw.githubusercontent.com/smart-data-models/<repo>/master/context.jsonld
// and https://smart-data-models.github.io/<repo>/context.jsonld), for the
// broker's JSON-LD document loader. With them, the type terms of the embedded
// models expand to the models' type IRIs offline. The map and the byte slices
// are fresh on every call and belong to the caller.
func Contexts() map[string][]byte {
	out := make(map[string][]byte, 2*len(contextRepos))
	for _, repo := range contextRepos {
		b, err := models.ReadFile("models/" + repo + "/context.jsonld")
		if err != nil {
			// The list above and the embedded files are checked by a test.
			continue
		}
		out[sdmRawBase+repo+"/master/context.jsonld"] = b
		out[sdmPagesBase+repo+"/context.jsonld"] = append([]byte(nil), b...)
	}
	return out
}

// contextTerm returns the IRI that term expands to in the embedded
// context.jsonld of repo.
func contextTerm(repo, term string) (string, error) {
	b, err := models.ReadFile("models/" + repo + "/context.jsonld")
	if err != nil {
		return "", fmt.Errorf("schemas: embedded context of %s: %w", repo, err)
	}
	var doc struct {
		Context map[string]json.RawMessage `json:"@context"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("schemas: embedded context of %s: %w", repo, err)
	}
	raw, ok := doc.Context[term]
	if !ok {
		return "", fmt.Errorf("schemas: embedded context of %s does not define %q", repo, term)
	}
	var iri string
	if err := json.Unmarshal(raw, &iri); err == nil {
		return iri, nil
	}
	var def struct {
		ID string `json:"@id"`
	}
	if err := json.Unmarshal(raw, &def); err != nil || def.ID == "" {
		return "", fmt.Errorf("schemas: embedded context of %s: term %q has no IRI", repo, term)
	}
	return def.ID, nil
}

// canonicalURL maps a document URL to the key under which the registry keeps
// the document: the URL without its fragment, with the raw.githubusercontent.com
// form of a Smart Data Models file mapped to its GitHub pages form (both serve
// the same file). It reports false for a URL that is not absolute.
func canonicalURL(u string) (string, bool) {
	if i := strings.IndexByte(u, '#'); i >= 0 {
		u = u[:i]
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || scheme == "" || rest == "" || strings.HasPrefix(rest, "/") {
		return "", false
	}
	scheme = strings.ToLower(scheme)
	host, p, _ := strings.Cut(rest, "/")
	host = strings.ToLower(host)
	if (scheme == "http" || scheme == "https") && host == "raw.githubusercontent.com" {
		parts := strings.SplitN(p, "/", 4)
		if len(parts) == 4 && parts[0] == "smart-data-models" && (parts[2] == "master" || parts[2] == "main") {
			return sdmPagesBase + parts[1] + "/" + parts[3], true
		}
	}
	if (scheme == "http" || scheme == "https") && host == "smart-data-models.github.io" {
		scheme = "https"
	}
	return scheme + "://" + host + "/" + p, true
}

// embeddedURL is the canonical URL of an embedded file models/<file>.
func embeddedURL(file string) string {
	return sdmPagesBase + path.Clean(file)
}
