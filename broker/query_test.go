package broker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// randomEntity makes an entity whose attributes take every shape the
// indexes treat differently: scalars of each kind, arrays, compound values,
// several instances, language maps, relationships, points and polygons.
func randomEntity(t testing.TB, rng *rand.Rand, id string) *Entity {
	var b strings.Builder
	fmt.Fprintf(&b, `{"id":%q,"type":`, id)
	switch rng.IntN(4) {
	case 0:
		b.WriteString(`"T0"`)
	case 1:
		b.WriteString(`"T1"`)
	case 2:
		b.WriteString(`["T0","T2"]`)
	default:
		b.WriteString(`"T3"`)
	}
	if rng.IntN(5) == 0 {
		fmt.Fprintf(&b, `,"scope":"/r/%d"`, rng.IntN(3))
	}
	// n: mostly a number, sometimes a string, an array, two instances.
	switch rng.IntN(8) {
	case 0:
		// absent
	case 1:
		fmt.Fprintf(&b, `,"n":{"type":"Property","value":"%d"}`, rng.IntN(10))
	case 2:
		fmt.Fprintf(&b, `,"n":{"type":"Property","value":[%d,%d]}`, rng.IntN(10), rng.IntN(10))
	case 3:
		fmt.Fprintf(&b, `,"n":[{"type":"Property","value":%d},{"type":"Property","value":%d,"datasetId":"urn:ds:1"}]`, rng.IntN(10), rng.IntN(10))
	case 4:
		fmt.Fprintf(&b, `,"n":{"type":"Property","value":%d.5,"observedAt":"2024-01-0%dT00:00:00Z"}`, rng.IntN(10)-5, 1+rng.IntN(5))
	default:
		fmt.Fprintf(&b, `,"n":{"type":"Property","value":%d}`, rng.IntN(10)-3)
	}
	words := []string{"red", "green", "blue", "2024-01-02T00:00:00Z", "10"}
	switch rng.IntN(6) {
	case 0:
	case 1:
		fmt.Fprintf(&b, `,"s":{"type":"Property","value":{"k":%q}}`, words[rng.IntN(len(words))])
	case 2:
		fmt.Fprintf(&b, `,"s":{"type":"LanguageProperty","languageMap":{"en":%q,"it":"rosso"}}`, words[rng.IntN(len(words))])
	default:
		fmt.Fprintf(&b, `,"s":{"type":"Property","value":%q}`, words[rng.IntN(len(words))])
	}
	switch rng.IntN(4) {
	case 0:
	case 1:
		fmt.Fprintf(&b, `,"flag":{"type":"Property","value":%d}`, rng.IntN(2))
	default:
		fmt.Fprintf(&b, `,"flag":{"type":"Property","value":%v}`, rng.IntN(2) == 0)
	}
	switch rng.IntN(4) {
	case 0:
	case 1:
		fmt.Fprintf(&b, `,"rel":{"type":"Relationship","object":["urn:x:%d","urn:x:%d"]}`, rng.IntN(3), rng.IntN(3))
	default:
		fmt.Fprintf(&b, `,"rel":{"type":"Relationship","object":"urn:x:%d"}`, rng.IntN(3))
	}
	// Points around Mantova and across the antimeridian; some polygons.
	centers := [][2]float64{{10.79, 45.16}, {179.99, -16.5}, {-179.99, -16.5}}
	c := centers[rng.IntN(len(centers))]
	lon, lat := c[0]+(rng.Float64()-0.5)*0.05, c[1]+(rng.Float64()-0.5)*0.05
	lon = max(-180, min(180, lon))
	switch rng.IntN(6) {
	case 0:
	case 1:
		fmt.Fprintf(&b, `,"location":{"type":"GeoProperty","value":{"type":"Polygon","coordinates":[[[%[1]f,%[2]f],[%[3]f,%[2]f],[%[3]f,%[4]f],[%[1]f,%[2]f]]]}}`,
			lon, lat, max(-180, min(180, lon+0.01)), lat+0.01)
	case 2:
		fmt.Fprintf(&b, `,"location":[{"type":"GeoProperty","value":{"type":"Point","coordinates":[%f,%f]}},{"type":"GeoProperty","datasetId":"urn:ds:2","value":{"type":"Point","coordinates":[0,0]}}]`, lon, lat)
	default:
		fmt.Fprintf(&b, `,"location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[%f,%f]}}`, lon, lat)
	}
	b.WriteString("}")
	return mustParse(t, b.String(), ParseOptions{})
}

var oracleQueries = []string{
	"n", "!n", "n==3", "n!=3", "n>2", "n>=2", "n<0", "n<=-1", "n==1..4", "n==1,2,7", "n==\"3\"", "n>-2.5;n<1",
	"n.observedAt>2024-01-03T00:00:00Z", "n==0|s==red", "(n>1;s==red)|flag==true", "s==red", "s==\"10\"", "s==10",
	"s==2024-01-02T00:00:00Z", "s[k]==red", "s[en]==green", "s~=re", "s!~=^r", "flag==true", "flag==false", "flag==1",
	"rel==urn:x:1", "rel==\"urn:x:2\"", "rel!=urn:x:0", "n>100", "missing==1", "n==1;s==blue;flag==true", "createdAt>2000-01-01",
	"n==2..1", "rel{n}>1",
}

var oracleGeo = [][4]string{
	{"near;maxDistance==2000", "Point", "[10.79,45.16]"},
	{"near;maxDistance==1500", "Point", "[179.995,-16.5]"},
	{"near;minDistance==2000", "Point", "[10.79,45.16]"},
	{"within", "Polygon", "[[[10.77,45.14],[10.80,45.14],[10.80,45.17],[10.77,45.17],[10.77,45.14]]]"},
	{"intersects", "Polygon", "[[[179.98,-16.52],[-179.98,-16.52],[-179.98,-16.48],[179.98,-16.48],[179.98,-16.52]]]"},
	{"disjoint", "Point", "[10.79,45.16]"},
	{"near;maxDistance==500", "LineString", "[[10.78,45.15],[10.80,45.17]]"},
}

// oracle is the answer of a scan: every record decoded and matched.
func oracle(t *testing.T, rm *readModel, q *Query) []string {
	t.Helper()
	resolve := func(id string) *Entity {
		if r := rm.get(id); r != nil {
			e, _ := r.entity()
			return e
		}
		return nil
	}
	var ids []string
	rm.mu.RLock()
	recs := make([]*record, 0, len(rm.byID))
	for _, r := range rm.byID {
		recs = append(recs, r)
	}
	rm.mu.RUnlock()
	for _, r := range recs {
		e, err := r.entity()
		if err != nil {
			t.Fatal(err)
		}
		if matchesRecord(r, q) && matches(e, *q, resolve) {
			ids = append(ids, r.id)
		}
	}
	slices.Sort(ids)
	return ids
}

func queryIDs(t *testing.T, rm *readModel, q *Query) []string {
	t.Helper()
	res, err := rm.query(context.Background(), q, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(res.Entities))
	for _, e := range res.Entities {
		ids = append(ids, e.ID)
	}
	if res.Total != len(ids) {
		t.Fatalf("total %d, %d entities", res.Total, len(ids))
	}
	return ids
}

// TestQueryIndexOracle checks that every indexed query answers exactly what
// a scan with the full semantics answers, while entities are created,
// replaced and deleted (so that value columns compact and slots are reused).
func TestQueryIndexOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rm := newReadModel(64)
	seq := uint64(0)
	apply := func(e *Entity) {
		seq++
		rm.put(newRecord(e.ID, e.Types[0], e.Types, seq, encodeStored(e)))
	}
	const ids = 600
	for i := 0; i < ids; i++ {
		apply(randomEntity(t, rng, fmt.Sprintf("urn:e:%03d", i)))
	}
	var queries []Query
	for _, s := range oracleQueries {
		qe, err := ParseQ(s, nil)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		queries = append(queries, Query{Q: qe})
		ts, _ := ParseTypeSelection("T0", nil)
		queries = append(queries, Query{Q: qe, TypeSel: ts})
	}
	for _, g := range oracleGeo {
		gq, err := ParseGeoQuery(g[0], g[1], g[2], "", nil)
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		queries = append(queries, Query{Geo: gq})
		qe, _ := ParseQ("n>0", nil)
		queries = append(queries, Query{Geo: gq, Q: qe, Types: []string{"T2", "T3"}})
	}
	for _, ts := range []string{"T0", "T1,T3", "(T0;T2)", "*", "T9"} {
		sel, err := ParseTypeSelection(ts, nil)
		if err != nil {
			t.Fatal(err)
		}
		queries = append(queries, Query{TypeSel: sel}, Query{TypeSel: sel, Attrs: []string{"rel", "flag"}})
	}
	sq, _ := ParseScopeQ("/r/1")
	queries = append(queries, Query{Scope: sq}, Query{IDs: []string{"urn:e:001", "urn:e:002", "urn:e:999"}},
		Query{IDPattern: regexpMust(t, "e:0[0-4]")}, Query{})
	for round := 0; round < 6; round++ {
		for i, q := range queries {
			want, got := oracle(t, rm, &q), queryIDs(t, rm, &q)
			if !slices.Equal(want, got) {
				t.Fatalf("round %d, query %d (%+v): index answered %d entities, scan %d\nindex: %v\nscan:  %v",
					round, i, describe(q), len(got), len(want), got, want)
			}
		}
		// Writes: replace most, delete some, bring some back.
		for i := 0; i < ids; i++ {
			id := fmt.Sprintf("urn:e:%03d", rng.IntN(ids))
			if rng.IntN(5) == 0 {
				seq++
				rm.del(id, seq)
				continue
			}
			apply(randomEntity(t, rng, id))
		}
	}
}

func describe(q Query) string {
	var parts []string
	if q.Q != nil {
		parts = append(parts, "q="+q.Q.String())
	}
	if q.Geo != nil {
		parts = append(parts, "georel="+q.Geo.Relation())
	}
	if q.TypeSel != nil {
		parts = append(parts, "type="+q.TypeSel.String())
	}
	if len(q.Types) > 0 {
		parts = append(parts, "types="+strings.Join(q.Types, ","))
	}
	if len(q.Attrs) > 0 {
		parts = append(parts, "attrs="+strings.Join(q.Attrs, ","))
	}
	return strings.Join(parts, "&")
}

func regexpMust(t *testing.T, p string) *regexp.Regexp {
	t.Helper()
	re, err := CompileRegexp("idPattern", p)
	if err != nil {
		t.Fatal(err)
	}
	return re
}
