package broker

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The predicates are planar in lon/lat with the antimeridian unwrapped (see
// geoquery.go); these tests pin what that approximation answers, including
// across ±180 and near the poles, where distances are exact on the sphere.

const metresPerDegree = earthRadius * math.Pi / 180 // 111,195.08 m

func TestDistanceMeters(t *testing.T) {
	cases := []struct {
		name                   string
		lon1, lat1, lon2, lat2 float64
		want                   float64
	}{
		{"same point", 13.4, 52.5, 13.4, 52.5, 0},
		{"one degree of latitude", 0, 0, 0, 1, metresPerDegree},
		{"one degree of longitude at the equator", 10, 0, 11, 0, metresPerDegree},
		{"across the antimeridian", 179.99, 0, -179.99, 0, 0.02 * metresPerDegree},
		{"across the antimeridian, other way", -179.99, 0, 179.99, 0, 0.02 * metresPerDegree},
		{"over the north pole", 0, 89.99, 180, 89.99, 0.02 * metresPerDegree},
		{"at the pole, any longitude", 0, 90, 123, 90, 0},
		{"over the south pole", 45, -89.9, -135, -89.9, 0.2 * metresPerDegree},
		{"antipodes", 0, 0, 180, 0, math.Pi * earthRadius},
		{"pole to pole", 0, 90, 0, -90, math.Pi * earthRadius},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := DistanceMeters(c.lon1, c.lat1, c.lon2, c.lat2)
			if math.Abs(got-c.want) > 1e-6*max(1, c.want) {
				t.Errorf("DistanceMeters = %.6f m, want %.6f m", got, c.want)
			}
		})
	}
	// Near the pole longitudes converge: 90° apart at 89.99° is about
	// sqrt(2) * 0.01° of arc, far less than at the equator.
	if d := DistanceMeters(0, 89.99, 90, 89.99); math.Abs(d-math.Sqrt2*0.01*metresPerDegree) > 0.05 {
		t.Errorf("90° of longitude at 89.99°N = %.3f m, want about %.3f m", d, math.Sqrt2*0.01*metresPerDegree)
	}
	// Against the spherical law of cosines, for random pairs that are
	// neither very close nor antipodal (where that formula loses precision).
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 1000; i++ {
		lon1, lat1 := r.Float64()*360-180, r.Float64()*180-90
		lon2, lat2 := r.Float64()*360-180, r.Float64()*180-90
		rad := math.Pi / 180
		c := math.Sin(lat1*rad)*math.Sin(lat2*rad) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Cos((lon2-lon1)*rad)
		if c > 0.999 || c < -0.999 {
			continue
		}
		want := earthRadius * math.Acos(c)
		if got := DistanceMeters(lon1, lat1, lon2, lat2); math.Abs(got-want) > 1e-3 {
			t.Fatalf("(%v,%v)-(%v,%v): %v m, law of cosines %v m", lon1, lat1, lon2, lat2, got, want)
		}
		if got, back := DistanceMeters(lon1, lat1, lon2, lat2), DistanceMeters(lon2, lat2, lon1, lat1); got != back {
			t.Fatalf("not symmetric: %v vs %v", got, back)
		}
	}
}

func TestSegmentDistance(t *testing.T) {
	cases := []struct {
		name    string
		q, a, b pt
		want    float64
	}{
		{"above the middle", pt{0, 1}, pt{-1, 0}, pt{1, 0}, metresPerDegree},
		{"beyond the end", pt{2, 0}, pt{-1, 0}, pt{1, 0}, metresPerDegree},
		{"on the segment", pt{0.5, 0}, pt{-1, 0}, pt{1, 0}, 0},
		{"across the antimeridian", pt{180, 1}, pt{179, 0}, pt{-179, 0}, metresPerDegree},
		{"degenerate segment", pt{0, 1}, pt{0, 0}, pt{0, 0}, metresPerDegree},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := segmentDistance(c.q, c.a, c.b); math.Abs(got-c.want) > 1e-6*max(1, c.want) {
				t.Errorf("segmentDistance = %.6f, want %.6f", got, c.want)
			}
		})
	}
	// The shortest arc from (0,89) to (180,89) runs over the pole; a point
	// at (90,89) is 1° of arc from the pole, and the arc's nearest point to
	// it is the pole itself.
	if got := segmentDistance(pt{90, 89}, pt{0, 89}, pt{180, 89}); math.Abs(got-metresPerDegree) > 1e-3 {
		t.Errorf("distance to an arc over the pole = %.3f, want %.3f", got, metresPerDegree)
	}
}

func geoEntity(id, geometry string) *Entity {
	v, err := DecodeJSON([]byte(geometry))
	if err != nil {
		panic(err)
	}
	return &Entity{ID: id, Types: []string{"T"}, Attrs: map[string]Instances{
		"location": {{Type: GeoProperty, Value: v}},
	}}
}

func point(lon, lat float64) string {
	return fmt.Sprintf(`{"type":"Point","coordinates":[%v,%v]}`, lon, lat)
}

func polygon(minLon, minLat, maxLon, maxLat float64) string {
	return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`,
		minLon, minLat, maxLon, minLat, maxLon, maxLat, minLon, maxLat, minLon, minLat)
}

func TestGeoQueryMatch(t *testing.T) {
	square := `[[[13,52],[14,52],[14,53],[13,53],[13,52]]]`
	// A polygon across the antimeridian, written with a jump from 170 to -170.
	dateline := `[[[170,-10],[-170,-10],[-170,10],[170,10],[170,-10]]]`
	// The same area split in two at ±180, as RFC 7946 recommends.
	split := `[[[[170,-10],[180,-10],[180,10],[170,10],[170,-10]]],[[[-180,-10],[-170,-10],[-170,10],[-180,10],[-180,-10]]]]`
	cases := []struct {
		name, georel, geometry, coords, entity string
		want                                   bool
	}{
		// near, around Berlin
		{"near: 680 m", "near;maxDistance==2000", "Point", "[13.4,52.5]", point(13.41, 52.5), true},
		{"near: 6.8 km", "near;maxDistance==2000", "Point", "[13.4,52.5]", point(13.5, 52.5), false},
		{"near: the point itself", "near;maxDistance==0", "Point", "[13.4,52.5]", point(13.4, 52.5), true},
		{"minDistance: 6.8 km", "near;minDistance==2000", "Point", "[13.4,52.5]", point(13.5, 52.5), true},
		{"minDistance: 680 m", "near;minDistance==2000", "Point", "[13.4,52.5]", point(13.41, 52.5), false},
		{"both: in the ring", "near;minDistance==500;maxDistance==1000", "Point", "[13.4,52.5]", point(13.41, 52.5), true},
		{"both: too close", "near;minDistance==800;maxDistance==1000", "Point", "[13.4,52.5]", point(13.41, 52.5), false},
		{"NGSIv2 spelling", "near;maxDistance:2000", "Point", "[13.4,52.5]", point(13.41, 52.5), true},
		// near across the antimeridian and near the poles
		{"near across ±180", "near;maxDistance==3000", "Point", "[179.99,0]", point(-179.99, 0), true},
		{"minDistance across ±180", "near;minDistance==3000", "Point", "[179.99,0]", point(-179.99, 0), false},
		{"near over the pole", "near;maxDistance==3000", "Point", "[0,89.99]", point(180, 89.99), true},
		{"near the pole, 90° apart", "near;maxDistance==1600", "Point", "[0,89.99]", point(90, 89.99), true},
		{"near the pole, too far", "near;maxDistance==3000", "Point", "[0,89.99]", point(0, 89.9), false},
		// near other geometries: the distance to their nearest point
		{"near a line, 1.1 km", "near;maxDistance==2000", "Point", "[13.4,52.5]", `{"type":"LineString","coordinates":[[13,52.51],[14,52.51]]}`, true},
		{"near a line, too far", "near;maxDistance==1000", "Point", "[13.4,52.5]", `{"type":"LineString","coordinates":[[13,52.51],[14,52.51]]}`, false},
		{"inside a polygon", "near;maxDistance==1", "Point", "[13.4,52.5]", polygon(13, 52, 14, 53), true},
		{"outside a polygon, 0.9 km from its edge", "near;maxDistance==1000", "Point", "[13.4,52.5]", polygon(13.3, 52.508, 13.5, 52.6), true},
		{"outside a polygon, too far", "near;maxDistance==800", "Point", "[13.4,52.5]", polygon(13.3, 52.508, 13.5, 52.6), false},
		{"inside a polygon across ±180", "near;maxDistance==1", "Point", "[-175,0]", `{"type":"Polygon","coordinates":` + dateline + `}`, true},
		{"near a multipoint", "near;maxDistance==1000", "Point", "[13.4,52.5]", `{"type":"MultiPoint","coordinates":[[0,0],[13.401,52.5]]}`, true},
		// near another reference geometry: the distance between the shapes
		// (the edge is a great-circle arc, which bows ~0.001° north of the
		// parallel 52.51 between 13 and 14: the point is 1.2 km from it)
		{"near a line: a point 1.2 km off", "near;maxDistance==1300", "LineString", "[[13,52.51],[14,52.51]]", point(13.4, 52.5), true},
		{"near a line: too far", "near;maxDistance==1000", "LineString", "[[13,52.51],[14,52.51]]", point(13.4, 52.5), false},
		{"near a line: beyond its end", "near;maxDistance==1200", "LineString", "[[13,52.5],[13.39,52.5]]", point(13.4, 52.5), true},
		{"near a polygon: a point inside", "near;maxDistance==0", "Polygon", "[[[13,52],[14,52],[14,53],[13,53],[13,52]]]", point(13.5, 52.5), true},
		{"near a polygon: minDistance from inside", "near;minDistance==1", "Polygon", "[[[13,52],[14,52],[14,53],[13,53],[13,52]]]", point(13.5, 52.5), false},
		{"near a polygon: a polygon 1.1 km north", "near;maxDistance==1200", "Polygon", "[[[13,52],[14,52],[14,52.5],[13,52.5],[13,52]]]", polygon(13.2, 52.51, 13.3, 52.6), true},
		{"near a polygon: too far", "near;maxDistance==1000", "Polygon", "[[[13,52],[14,52],[14,52.5],[13,52.5],[13,52]]]", polygon(13.2, 52.51, 13.3, 52.6), false},
		{"near a polygon: overlapping", "near;maxDistance==0", "Polygon", "[[[13,52],[14,52],[14,52.5],[13,52.5],[13,52]]]", polygon(13.2, 52.4, 13.3, 52.6), true},
		{"near a polygon across ±180", "near;maxDistance==2300", "Polygon", "[[[179.99,-1],[179.999,-1],[179.999,1],[179.99,1],[179.99,-1]]]", point(-179.99, 0), true},
		{"near a polygon across ±180: too far", "near;maxDistance==2000", "Polygon", "[[[179.99,-1],[179.999,-1],[179.999,1],[179.99,1],[179.99,-1]]]", point(-179.98, 0), false},
		// within a square
		{"within: inside", "within", "Polygon", square, point(13.5, 52.5), true},
		{"within: outside", "within", "Polygon", square, point(15, 52.5), false},
		{"within: on the boundary", "within", "Polygon", square, point(13, 52.5), false},
		{"within: a polygon inside", "within", "Polygon", square, polygon(13.2, 52.2, 13.8, 52.8), true},
		{"within: a polygon across", "within", "Polygon", square, polygon(13.5, 52.5, 14.5, 53.5), false},
		{"within: the same polygon", "within", "Polygon", square, polygon(13, 52, 14, 53), true},
		{"within: a line inside", "within", "Polygon", square, `{"type":"LineString","coordinates":[[13.1,52.1],[13.9,52.9]]}`, true},
		{"within: a line leaving", "within", "Polygon", square, `{"type":"LineString","coordinates":[[13.1,52.1],[14.9,52.9]]}`, false},
		{"within: a concave polygon", "within", "Polygon", `[[[0,0],[10,0],[10,10],[5,2],[0,10],[0,0]]]`, `{"type":"LineString","coordinates":[[1,8],[9,8]]}`, false},
		{"within: a hole", "within", "Polygon", `[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]]`, point(5, 5), false},
		{"within: beside a hole", "within", "Polygon", `[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]]`, point(2, 5), true},
		{"within: around a hole", "within", "Polygon", `[[[0,0],[10,0],[10,10],[0,10],[0,0]],[[4,4],[6,4],[6,6],[4,6],[4,4]]]`, polygon(3, 3, 7, 7), false},
		{"within: a multipolygon", "within", "MultiPolygon", `[` + square + `,[[[0,0],[1,0],[1,1],[0,1],[0,0]]]]`, point(0.5, 0.5), true},
		// within across the antimeridian
		{"within ±180: west side", "within", "Polygon", dateline, point(-175, 0), true},
		{"within ±180: east side", "within", "Polygon", dateline, point(175, 0), true},
		{"within ±180: on the line", "within", "Polygon", dateline, point(180, 0), true},
		{"within ±180: far", "within", "Polygon", dateline, point(0, 0), false},
		{"within ±180: beyond", "within", "Polygon", dateline, point(-160, 0), false},
		{"within split ±180: west", "within", "MultiPolygon", split, point(-175, 0), true},
		{"within split ±180: east", "within", "MultiPolygon", split, point(175, 5), true},
		{"within split ±180: a line across", "within", "MultiPolygon", split, `{"type":"LineString","coordinates":[[175,0],[-175,0]]}`, true},
		{"within split ±180: beyond", "within", "MultiPolygon", split, point(-165, 0), false},
		{"within ±180: a polygon across", "within", "Polygon", dateline, `{"type":"Polygon","coordinates":[[[175,-5],[-175,-5],[-175,5],[175,5],[175,-5]]]}`, true},
		// within near a pole (a lon/lat box, planar)
		{"within polar box", "within", "Polygon", `[[[-180,80],[180,80],[180,90],[-180,90],[-180,80]]]`, point(45, 85), true},
		// contains
		{"contains: a big polygon", "contains", "Polygon", square, polygon(12, 51, 15, 54), true},
		{"contains: a small polygon", "contains", "Polygon", square, polygon(13.2, 52.2, 13.8, 52.8), false},
		{"contains: a point in a polygon", "contains", "Point", "[13.5,52.5]", polygon(13, 52, 14, 53), true},
		{"contains: a point outside", "contains", "Point", "[15,52.5]", polygon(13, 52, 14, 53), false},
		{"contains: a point on a line", "contains", "Point", "[13.5,52.5]", `{"type":"LineString","coordinates":[[13,52.5],[14,52.5]]}`, true},
		// intersects and disjoint
		{"intersects: overlapping", "intersects", "Polygon", square, polygon(13.5, 52.5, 14.5, 53.5), true},
		{"intersects: touching corner", "intersects", "Polygon", square, polygon(14, 53, 15, 54), true},
		{"intersects: boundary point", "intersects", "Polygon", square, point(13, 52.5), true},
		{"intersects: far", "intersects", "Polygon", square, polygon(20, 20, 21, 21), false},
		{"intersects: crossing lines", "intersects", "LineString", "[[0,0],[2,2]]", `{"type":"LineString","coordinates":[[0,2],[2,0]]}`, true},
		{"intersects: a line through a polygon", "intersects", "LineString", "[[12,52.5],[15,52.5]]", polygon(13, 52, 14, 53), true},
		{"intersects: a multilinestring", "intersects", "MultiLineString", "[[[0,0],[1,1]],[[12,52.5],[15,52.5]]]", polygon(13, 52, 14, 53), true},
		{"intersects ±180", "intersects", "Polygon", dateline, polygon(-175, 5, -160, 20), true},
		{"disjoint: far", "disjoint", "Polygon", square, polygon(20, 20, 21, 21), true},
		{"disjoint: overlapping", "disjoint", "Polygon", square, polygon(13.5, 52.5, 14.5, 53.5), false},
		{"disjoint ±180", "disjoint", "Polygon", dateline, point(-175, 0), false},
		// equals
		{"equals: the same square, another start", "equals", "Polygon", square, `{"type":"Polygon","coordinates":[[[14,53],[13,53],[13,52],[14,52],[14,53]]]}`, true},
		{"equals: a smaller square", "equals", "Polygon", square, polygon(13.2, 52.2, 13.8, 52.8), false},
		{"equals: a point", "equals", "Point", "[13.5,52.5]", point(13.5, 52.5), true},
		{"equals: another point", "equals", "Point", "[13.5,52.5]", point(13.5, 52.6), false},
		{"equals: a line reversed", "equals", "LineString", "[[0,0],[1,1]]", `{"type":"LineString","coordinates":[[1,1],[0,0]]}`, true},
		// overlaps
		{"overlaps: polygons", "overlaps", "Polygon", square, polygon(13.5, 52.5, 14.5, 53.5), true},
		{"overlaps: shifted along an edge", "overlaps", "Polygon", `[[[0,0],[2,0],[2,2],[0,2],[0,0]]]`, polygon(1, 0, 3, 2), true},
		{"overlaps: inside is not overlapping", "overlaps", "Polygon", square, polygon(13.2, 52.2, 13.8, 52.8), false},
		{"overlaps: touching is not overlapping", "overlaps", "Polygon", square, polygon(14, 52, 15, 53), false},
		{"overlaps: a point and a polygon", "overlaps", "Polygon", square, point(13.5, 52.5), false},
		{"overlaps: collinear lines", "overlaps", "LineString", "[[0,0],[2,0]]", `{"type":"LineString","coordinates":[[1,0],[3,0]]}`, true},
		{"overlaps: crossing lines", "overlaps", "LineString", "[[0,0],[2,2]]", `{"type":"LineString","coordinates":[[0,2],[2,0]]}`, false},
		{"overlaps: multipoints", "overlaps", "MultiPoint", "[[0,0],[1,1]]", `{"type":"MultiPoint","coordinates":[[1,1],[2,2]]}`, true},
		// geometry collections on the entity side
		{"within: a collection", "within", "Polygon", square, `{"type":"GeometryCollection","geometries":[` + point(13.5, 52.5) + `,` + point(13.6, 52.6) + `]}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := ParseGeoQuery(c.georel, c.geometry, c.coords, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			e := geoEntity("urn:e", c.entity)
			if got := g.Match(e); got != c.want {
				t.Errorf("Match = %v, want %v", got, c.want)
			}
			// The bounding box never drops a match.
			if minLon, minLat, maxLon, maxLat, ok := g.BBox(); ok && g.Match(e) {
				eg := buildGeom(e.Attrs["location"][0].Value.(map[string]any))
				if !bboxMeets(minLon, minLat, maxLon, maxLat, eg) {
					t.Errorf("a match %s lies outside BBox %v,%v %v,%v", c.entity, minLon, minLat, maxLon, maxLat)
				}
			}
		})
	}
}

// bboxMeets reports whether a geometry's own box meets a BBox answer,
// handling boxes across the antimeridian (minLon > maxLon).
func bboxMeets(minLon, minLat, maxLon, maxLat float64, g *geom) bool {
	ranges := [][2]float64{{minLon, maxLon}}
	if minLon > maxLon {
		ranges = [][2]float64{{minLon, 180}, {-180, maxLon}}
	}
	for _, r := range ranges {
		for _, shift := range []float64{-360, 0, 360} {
			if g.box.minX+shift <= r[1] && r[0] <= g.box.maxX+shift && g.box.minY <= maxLat && minLat <= g.box.maxY {
				return true
			}
		}
	}
	return false
}

func TestGeoQueryMissingProperty(t *testing.T) {
	for _, rel := range []string{"near;maxDistance==10", "near;minDistance==10", "within", "contains", "intersects", "equals", "disjoint", "overlaps"} {
		g, err := ParseGeoQuery(rel, "Point", "[0,0]", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range []*Entity{
			{ID: "urn:none", Types: []string{"T"}},
			{ID: "urn:text", Types: []string{"T"}, Attrs: map[string]Instances{"location": {{Type: Property, Value: "here"}}}},
		} {
			if g.Match(e) {
				t.Errorf("%s matches %s, which has no location", rel, e.ID)
			}
		}
	}
}

func TestGeoQueryGeoproperty(t *testing.T) {
	g, err := ParseGeoQuery("near;maxDistance==100", "Point", "[1,2]", "observationSpace", mapNames{"observationSpace": "https://ex.org/observationSpace"})
	if err != nil {
		t.Fatal(err)
	}
	if g.Property() != "https://ex.org/observationSpace" {
		t.Errorf("Property = %s", g.Property())
	}
	e := &Entity{ID: "urn:e", Attrs: map[string]Instances{
		"https://ex.org/observationSpace": {
			{Type: GeoProperty, Value: mustNumberGeo(`{"type":"Point","coordinates":[50,50]}`), DatasetID: "urn:a"},
			{Type: GeoProperty, Value: mustNumberGeo(`{"type":"Point","coordinates":[1,2]}`), DatasetID: "urn:b"},
		},
		"location": {{Type: GeoProperty, Value: mustNumberGeo(`{"type":"Point","coordinates":[50,50]}`)}},
	}}
	if !g.Match(e) {
		t.Error("the second instance is at the point")
	}
	g2, _ := ParseGeoQuery("near;maxDistance==100", "Point", "[1,2]", "", nil)
	if g2.Property() != "location" || g2.Match(e) {
		t.Errorf("default geoproperty %s matched %v", g2.Property(), g2.Match(e))
	}
}

func mustNumberGeo(s string) any {
	v, err := DecodeJSON([]byte(s))
	if err != nil {
		panic(err)
	}
	return v
}

func TestWrapLon(t *testing.T) {
	for _, c := range [][2]float64{{0, 0}, {180, 180}, {-180, -180}, {190, -170}, {-190, 170}, {720 + 10, 10}, {-540, -180}} {
		if got := wrapLon(c[0]); got != c[1] && !(math.Abs(got) == 180 && math.Abs(c[1]) == 180) {
			t.Errorf("wrapLon(%v) = %v, want %v", c[0], got, c[1])
		}
	}
	// Infinite and NaN inputs return (NaN) instead of looping forever.
	for _, x := range []float64{math.Inf(1), math.Inf(-1), math.NaN()} {
		_ = wrapLon(x)
		_ = nearLon(x, 0)
		_ = nearLon(0, x)
	}
}

func TestGeoQueryBBox(t *testing.T) {
	cases := []struct {
		name, georel, geometry, coords string
		ok                             bool
		minLon, minLat, maxLon, maxLat float64
	}{
		{"near at the equator", "near;maxDistance==111195.08", "Point", "[10,0]", true, 9, -1, 11, 1},
		{"near across ±180", "near;maxDistance==111195.08", "Point", "[179.5,0]", true, 178.5, -1, -179.5, 1},
		{"near a pole", "near;maxDistance==222390.16", "Point", "[10,89]", true, -180, 87, 180, 90},
		{"minDistance: none", "near;minDistance==10", "Point", "[10,0]", false, 0, 0, 0, 0},
		{"disjoint: none", "disjoint", "Point", "[10,0]", false, 0, 0, 0, 0},
		{"within a polygon", "within", "Polygon", "[[[13,52],[14,52],[14,53],[13,53],[13,52]]]", true, 13, 52, 14, 53},
		{"within across ±180", "within", "Polygon", "[[[170,-10],[-170,-10],[-170,10],[170,10],[170,-10]]]", true, 170, -10, -170, 10},
		// longitudes widened by asin(sin 1° / cos 2°) = 1.00061°, the span of 1° of arc at 2°N
		{"near a box at the equator", "near;maxDistance==111195.08", "Polygon", "[[[10,-1],[12,-1],[12,1],[10,1],[10,-1]]]", true, 8.999390394788598, -2, 13.000609605211402, 2},
		{"near a box by a pole", "near;maxDistance==111195.08", "LineString", "[[10,88],[20,89.5]]", true, -180, 87, 180, 90},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := ParseGeoQuery(c.georel, c.geometry, c.coords, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			minLon, minLat, maxLon, maxLat, ok := g.BBox()
			if ok != c.ok {
				t.Fatalf("ok = %v", ok)
			}
			if !ok {
				return
			}
			for i, p := range [][2]float64{{minLon, c.minLon}, {minLat, c.minLat}, {maxLon, c.maxLon}, {maxLat, c.maxLat}} {
				if math.Abs(p[0]-p[1]) > 1e-6 {
					t.Errorf("bound %d = %v, want %v", i, p[0], p[1])
				}
			}
		})
	}
	// At 60°N a cap of radius r spans more longitude than latitude.
	g, _ := ParseGeoQuery("near;maxDistance==10000", "Point", "[0,60]", "", nil)
	minLon, minLat, maxLon, maxLat, _ := g.BBox()
	if w, h := maxLon-minLon, maxLat-minLat; math.Abs(w/h-2) > 0.01 {
		t.Errorf("box at 60°N is %v x %v degrees, want about 2:1", w, h)
	}
	// Random points within maxDistance always fall in the box.
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 2000; i++ {
		lon, lat := r.Float64()*360-180, r.Float64()*178-89
		d := r.Float64() * 500000
		g, err := ParseGeoQuery(fmt.Sprintf("near;maxDistance==%v", d), "Point", fmt.Sprintf("[%v,%v]", lon, lat), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		minLon, minLat, maxLon, maxLat, _ := g.BBox()
		for j := 0; j < 20; j++ {
			plon, plat := wrapLon(lon+(r.Float64()-0.5)*20), max(-90, min(90, lat+(r.Float64()-0.5)*10))
			if DistanceMeters(lon, lat, plon, plat) > d {
				continue
			}
			pg := &geom{pts: []pt{{plon, plat}}}
			pg.computeBox()
			if !bboxMeets(minLon, minLat, maxLon, maxLat, pg) {
				t.Fatalf("(%v,%v) within %v m of (%v,%v) is outside box %v,%v %v,%v", plon, plat, d, lon, lat, minLon, minLat, maxLon, maxLat)
			}
		}
	}
}

func TestGeoQueryErrors(t *testing.T) {
	cases := []struct{ georel, geometry, coords, prop, detail string }{
		{"", "Point", "[0,0]", "", "georel: missing"},
		{"nearby", "Point", "[0,0]", "", `georel: character 1: "nearby" is not a relation`},
		{"near", "Point", "[0,0]", "", "near needs maxDistance"},
		{"near;maxDistance", "Point", "[0,0]", "", "character 6: maxDistance needs =="},
		{"near;maxDistance==", "Point", "[0,0]", "", "non-negative number"},
		{"near;maxDistance==-5", "Point", "[0,0]", "", "non-negative number"},
		{"near;maxDistance==abc", "Point", "[0,0]", "", `character 19: maxDistance must be a non-negative number of metres, got "abc"`},
		{"near;maxDistance==1e999", "Point", "[0,0]", "", "non-negative number"},
		{"near;maxDistance==5;maxDistance==6", "Point", "[0,0]", "", "given twice"},
		{"near;distance==5", "Point", "[0,0]", "", `"distance==5" is not maxDistance`},
		{"within;maxDistance==5", "Polygon", "[[[0,0],[1,0],[1,1],[0,0]]]", "", "within takes no modifier"},
		{"within", "", "[0,0]", "", "geometry: missing"},
		{"within", "Circle", "[0,0]", "", `"Circle" is not one of`},
		{"within", "GeometryCollection", "[0,0]", "", "is not one of"},
		{"within", "Point", "", "", "coordinates: missing"},
		{"within", "Point", "[0,", "", "coordinates: invalid JSON"},
		{"within", "Point", "[0,0]x", "", "coordinates:"},
		{"within", "Point", `{"a":1}`, "", "must be a JSON array"},
		{"within", "Point", "[200,0]", "", "longitude 200 out of range"},
		{"within", "Point", "[0,-91]", "", "latitude -91 out of range"},
		{"within", "Point", `[0,"1"]`, "", "not a number"},
		{"within", "Point", "[[0,0]]", "", "coordinates"},
		{"within", "LineString", "[[0,0]]", "", "at least 2"},
		{"within", "Polygon", "[[[0,0],[1,0],[1,1],[0,1]]]", "", "must be closed"},
		{"within", "Polygon", "[[[0,0],[1,0],[0,0]]]", "", "at least 4"},
		{"within", "MultiPoint", "[" + strings.Repeat("[0,0],", MaxGeoPositions) + "[0,0]]", "", "more than 50000 positions"},
		{"within", "Point", "[0,0]", "bad name", "geoproperty"},
		{"within", "MultiPoint", "[]", "", "the MultiPoint has no positions"},
		{"intersects", "MultiLineString", "[]", "", "has no positions"},
		{"overlaps", "MultiPolygon", "[]", "", "has no positions"},
	}
	for _, c := range cases {
		name := c.georel + " " + c.geometry + " " + c.coords
		if len(name) > 50 {
			name = name[:50]
		}
		t.Run(name, func(t *testing.T) {
			_, err := ParseGeoQuery(c.georel, c.geometry, c.coords, c.prop, nil)
			var be *Error
			if !errors.As(err, &be) || be.Kind != ErrBadRequestData {
				t.Fatalf("error %v, want a BadRequestData *Error", err)
			}
			if !strings.Contains(be.Detail, c.detail) {
				t.Errorf("detail %q does not contain %q", be.Detail, c.detail)
			}
		})
	}
}

func FuzzParseGeoQuery(f *testing.F) {
	f.Add("near;maxDistance==2000", "Point", "[13.4,52.5]", "")
	f.Add("within", "Polygon", "[[[170,-10],[-170,-10],[-170,10],[170,10],[170,-10]]]", "location")
	f.Add("overlaps", "MultiPolygon", "[[[[0,0],[1,0],[1,1],[0,1],[0,0]]]]", "")
	f.Add("intersects", "LineString", "[[0,0],[2,2]]", "")
	f.Add("equals", "MultiPoint", "[[0,0],[1,1]]", "")
	f.Add("near;minDistance==10", "Point", "[0,90]", "loc")
	f.Add("contains", "MultiLineString", "[[[0,0],[1,1]]]", "")
	f.Add("equals", "MultiPoint", "[,", "q")
	f.Add("overlaps", "MultiPolygon", "[]", "")
	ents := []*Entity{
		geoEntity("urn:a", point(13.41, 52.5)),
		geoEntity("urn:b", polygon(-1, -1, 1, 1)),
		geoEntity("urn:c", `{"type":"Polygon","coordinates":[[[170,-10],[-170,-10],[-170,10],[170,10],[170,-10]]]}`),
		geoEntity("urn:d", `{"type":"MultiLineString","coordinates":[[[0,0],[1,1]],[[179,0],[-179,0]]]}`),
		geoEntity("urn:e", `{"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[0,90]}]}`),
		{ID: "urn:f"},
	}
	f.Fuzz(func(t *testing.T, georel, geometry, coords, prop string) {
		start := time.Now()
		g, err := ParseGeoQuery(georel, geometry, coords, prop, nil)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("ParseGeoQuery took %v", d)
		}
		if err != nil {
			var be *Error
			if !errors.As(err, &be) || be.Kind != ErrBadRequestData || be.Detail == "" {
				t.Fatalf("error %v is not a BadRequestData *Error", err)
			}
			return
		}
		for _, e := range ents {
			g.Match(e)
		}
		g.BBox()
		_ = g.String()
	})
}

func BenchmarkDistanceMeters(b *testing.B) {
	b.ReportAllocs()
	var s float64
	for b.Loop() {
		s += DistanceMeters(13.4, 52.5, 13.41, 52.51)
	}
	_ = s
}

func BenchmarkGeoQueryMatchNear(b *testing.B) {
	g, err := ParseGeoQuery("near;maxDistance==2000", "Point", "[13.4,52.5]", "", nil)
	if err != nil {
		b.Fatal(err)
	}
	e := geoEntity("urn:e", point(13.41, 52.5))
	b.ReportAllocs()
	for b.Loop() {
		g.Match(e)
	}
}

func BenchmarkGeoQueryMatchWithin(b *testing.B) {
	// A 64-sided polygon around Berlin, and a point inside it.
	var sb strings.Builder
	sb.WriteString("[[")
	for i := 0; i <= 64; i++ {
		a := 2 * math.Pi * float64(i%64) / 64
		fmt.Fprintf(&sb, "[%v,%v]", 13.4+0.2*math.Cos(a), 52.5+0.1*math.Sin(a))
		if i < 64 {
			sb.WriteByte(',')
		}
	}
	sb.WriteString("]]")
	g, err := ParseGeoQuery("within", "Polygon", sb.String(), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	pt := geoEntity("urn:p", point(13.41, 52.5))
	poly := geoEntity("urn:q", polygon(13.35, 52.45, 13.45, 52.55))
	if !g.Match(pt) || !g.Match(poly) {
		b.Fatal("no match")
	}
	b.Run("point", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Match(pt)
		}
	})
	b.Run("polygon", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			g.Match(poly)
		}
	})
}

func TestParseGeoQueryJSON(t *testing.T) {
	e := geoEntity("urn:e", point(13.41, 52.5))
	for _, coords := range []any{
		[]any{13.4, 52.5}, // float64, as encoding/json decodes
		mustNumberGeo("[13.4,52.5]"),
		"[13.4,52.5]", // older clients send the JSON text
	} {
		g, err := ParseGeoQueryJSON("near;maxDistance==2000", "Point", coords, "", nil)
		if err != nil {
			t.Fatalf("%#v: %v", coords, err)
		}
		if !g.Match(e) {
			t.Errorf("%#v: no match", coords)
		}
	}
	for coords, detail := range map[any]string{
		nil:  "coordinates: missing",
		5.0:  "must be a JSON array, got a number",
		"[":  "coordinates: invalid JSON",
		true: "must be a JSON array, got a boolean",
	} {
		_, err := ParseGeoQueryJSON("within", "Point", coords, "", nil)
		if err == nil || !errors.Is(err, ErrBadRequestData) || !strings.Contains(Detail(err), detail) {
			t.Errorf("%#v: error %v, want %q", coords, err, detail)
		}
	}
}

// TestGeoRectangles checks every relation against an exact oracle on
// axis-aligned rectangles and points of a small integer grid (so that
// touching edges and shared corners are common), placed across the
// antimeridian: x runs over 174..186 in unwrapped longitude and is written
// wrapped into [-180, 180] in the GeoJSON.
func TestGeoRectangles(t *testing.T) {
	type rect struct{ x0, y0, x1, y1 int } // x0 == x1 && y0 == y1: a point
	lon := func(x int) float64 { return wrapLon(float64(x)) }
	geoJSON := func(r rect) string {
		if r.x0 == r.x1 {
			return point(lon(r.x0), float64(r.y0))
		}
		return fmt.Sprintf(`{"type":"Polygon","coordinates":[[[%v,%v],[%v,%v],[%v,%v],[%v,%v],[%v,%v]]]}`,
			lon(r.x0), float64(r.y0), lon(r.x1), float64(r.y0), lon(r.x1), float64(r.y1), lon(r.x0), float64(r.y1), lon(r.x0), float64(r.y0))
	}
	coords := func(r rect) (string, string) {
		g := geoJSON(r)
		i := strings.Index(g, `"coordinates":`)
		if r.x0 == r.x1 {
			return "Point", g[i+len(`"coordinates":`) : len(g)-1]
		}
		return "Polygon", g[i+len(`"coordinates":`) : len(g)-1]
	}
	// The oracle, on closed rectangles (a point is a degenerate one).
	isPoint := func(r rect) bool { return r.x0 == r.x1 }
	inside := func(a, b rect) bool { return a.x0 >= b.x0 && a.x1 <= b.x1 && a.y0 >= b.y0 && a.y1 <= b.y1 }
	meets := func(a, b rect) bool { return a.x0 <= b.x1 && b.x0 <= a.x1 && a.y0 <= b.y1 && b.y0 <= a.y1 }
	interiorsMeet := func(a, b rect) bool {
		// The interior of a point is the point; of a rectangle, the open box.
		lo := func(v0, v1 int, pt bool) (float64, float64) {
			if pt {
				return float64(v0), float64(v0)
			}
			return float64(v0) + 0.5, float64(v1) - 0.5 // grid coordinates: open box shrunk by half a cell
		}
		ax0, ax1 := lo(a.x0, a.x1, isPoint(a))
		ay0, ay1 := lo(a.y0, a.y1, isPoint(a))
		bx0, bx1 := lo(b.x0, b.x1, isPoint(b))
		by0, by1 := lo(b.y0, b.y1, isPoint(b))
		return ax0 <= bx1 && bx0 <= ax1 && ay0 <= by1 && by0 <= ay1
	}
	within := func(a, b rect) bool { return inside(a, b) && interiorsMeet(a, b) }
	oracle := map[string]func(e, q rect) bool{
		"intersects": meets,
		"disjoint":   func(e, q rect) bool { return !meets(e, q) },
		"within":     within,
		"contains":   func(e, q rect) bool { return within(q, e) },
		"equals":     func(e, q rect) bool { return e == q },
		"overlaps": func(e, q rect) bool {
			return isPoint(e) == isPoint(q) && !isPoint(e) && interiorsMeet(e, q) && !inside(e, q) && !inside(q, e)
		},
	}
	r := rand.New(rand.NewPCG(5, 6))
	randRect := func() rect {
		if r.IntN(4) == 0 {
			x, y := 174+r.IntN(13), r.IntN(7)
			return rect{x, y, x, y}
		}
		x0, y0 := 174+r.IntN(12), r.IntN(6)
		return rect{x0, y0, x0 + 1 + r.IntN(186-x0), y0 + 1 + r.IntN(6-y0)}
	}
	checked, trues := 0, map[string]int{}
	for i := 0; i < 1500; i++ {
		e, q := randRect(), randRect()
		if i%8 == 0 {
			q = e
		}
		geometry, c := coords(q)
		ent := geoEntity("urn:e", geoJSON(e))
		for rel, want := range oracle {
			g, err := ParseGeoQuery(rel, geometry, c, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Match(ent); got != want(e, q) {
				t.Errorf("entity %v %s query %v: Match = %v, want %v", e, rel, q, got, want(e, q))
			}
			if want(e, q) {
				trues[rel]++
			}
			checked++
		}
	}
	t.Logf("%d relations checked; true answers: %v", checked, trues)
	for rel := range oracle {
		if trues[rel] < 10 {
			t.Errorf("only %d true answers for %s: the sample is too thin", trues[rel], rel)
		}
	}
}
