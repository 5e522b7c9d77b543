package broker

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// This file is the NGSI-LD geo-query language (GS CIM 009 V1.9.1, clause
// 4.10): georel, geometry, coordinates and geoproperty.
//
// near measures the distance between the reference geometry and the
// entity's (0 when they meet; for shapes that do not meet, the least
// distance from a vertex of one to the other). Distances are exact on a
// sphere of radius 6,371,008.8 m (the mean Earth radius): the haversine
// formula between points, and the cross-track distance to great-circle arcs
// for the segments of lines and polygon rings. Both are correct across the
// antimeridian and near the poles. (Segments are arcs for distances but
// straight lon/lat lines for the predicates below.)
//
// The spatial predicates (within, contains, intersects, equals, disjoint,
// overlaps) are evaluated in the lon/lat plane (EPSG:4326 taken as planar,
// as most brokers and GeoJSON tools do), with these approximations:
//   - Edges are straight lines in lon/lat, not great-circle arcs (the
//     difference grows with edge length and latitude; it is below a metre
//     for edges of a few kilometres at mid latitudes).
//   - The antimeridian: each line, ring and point is unwrapped (consecutive
//     longitudes never jump by more than 180°) and then shifted by a
//     multiple of 360° next to the reference geometry, so a polygon given as
//     [[179,0],[-179,0],...] or split in two at ±180 (RFC 7946 clause 3.1.9)
//     works. Geometries wider than 180° of longitude are ambiguous.
//   - A polygon cannot contain a pole (a ring around a pole has no inside in
//     the plane).
//   - within/contains/equals/overlaps test the vertices and edge midpoints
//     of one geometry against the other and look for proper edge
//     crossings; the topology of exotic shapes (touching holes, collinear
//     self-overlaps) may differ from a full DE-9IM computation.
//   - Points closer than about 1e-9 degrees (0.1 mm) are taken as equal.

// earthRadius is the mean radius of the Earth in metres (IUGG).
const earthRadius = 6371008.8

// Bounds of geo-query parameters.
const (
	// MaxGeoCoordinatesLength is the longest coordinates parameter accepted, in bytes.
	MaxGeoCoordinatesLength = 1 << 20
	// MaxGeoPositions is the most positions a query geometry may have.
	MaxGeoPositions = 50000
)

// geoEps is the tolerance of the planar predicates, in degrees.
const geoEps = 1e-9

type geoRel uint8

const (
	relNear geoRel = iota + 1
	relWithin
	relContains
	relIntersects
	relEquals
	relDisjoint
	relOverlaps
)

var geoRelNames = map[string]geoRel{
	"near": relNear, "within": relWithin, "contains": relContains, "intersects": relIntersects,
	"equals": relEquals, "disjoint": relDisjoint, "overlaps": relOverlaps,
}

// GeoQuery is a parsed geo-query. It is immutable and safe for concurrent
// use.
type GeoQuery struct {
	rel          geoRel
	maxDist      float64 // near: -1 when absent
	minDist      float64 // near: -1 when absent
	geometryType string
	ref          *geom
	prop         string
}

// ParseGeoQuery parses a geo-query from its parameters: georel (e.g.
// "near;maxDistance==2000", "within"), geometry (Point, MultiPoint,
// LineString, MultiLineString, Polygon, MultiPolygon), coordinates (the
// JSON array text of the URL, lon/lat) and geoproperty (a term expanded
// with names; "" means "location"). A malformed parameter is an *Error of
// kind ErrBadRequestData that names the parameter, the position and the
// reason.
func ParseGeoQuery(georel, geometry, coordinates, geoproperty string, names Names) (*GeoQuery, error) {
	g, err := startGeoQuery(georel, geometry, geoproperty, names)
	if err != nil {
		return nil, err
	}
	if coordinates == "" {
		return nil, badData("coordinates: missing (a JSON array such as [8.68,49.41])")
	}
	cv, err := decodeCoordinates(coordinates)
	if err != nil {
		return nil, err
	}
	return g.finish(cv)
}

// ParseGeoQueryJSON is ParseGeoQuery for a geo-query given as JSON (the geoQ
// member of a query or subscription body): coordinates is the decoded
// array, or a string holding its JSON text.
func ParseGeoQueryJSON(georel, geometry string, coordinates any, geoproperty string, names Names) (*GeoQuery, error) {
	if s, ok := coordinates.(string); ok {
		return ParseGeoQuery(georel, geometry, s, geoproperty, names)
	}
	g, err := startGeoQuery(georel, geometry, geoproperty, names)
	if err != nil {
		return nil, err
	}
	if coordinates == nil {
		return nil, badData("coordinates: missing (a JSON array such as [8.68,49.41])")
	}
	return g.finish(coordinates)
}

func decodeCoordinates(text string) (any, error) {
	if len(text) > MaxGeoCoordinatesLength {
		return nil, badData("coordinates: longer than %d bytes", MaxGeoCoordinatesLength)
	}
	cv, err := DecodeJSON([]byte(text))
	if err != nil {
		return nil, badData("coordinates: %v", err)
	}
	return cv, nil
}

// finish checks the coordinates and builds the reference geometry.
func (g *GeoQuery) finish(cv any) (*GeoQuery, error) {
	geometry := g.geometryType
	if _, ok := cv.([]any); !ok {
		return nil, badData("coordinates: must be a JSON array, got %s", jsonKind(cv))
	}
	if n := countPositions(cv, 0); n > MaxGeoPositions {
		return nil, badData("coordinates: more than %d positions", MaxGeoPositions)
	}
	gj := map[string]any{"type": geometry, "coordinates": cv}
	if err := ValidateGeometry(gj); err != nil {
		return nil, badData("coordinates: %v", err)
	}
	g.ref = buildGeom(gj)
	if math.IsInf(g.ref.box.minX, 0) {
		return nil, badData("coordinates: the %s has no positions", geometry)
	}
	g.ref.alignParts()
	return g, nil
}

// startGeoQuery checks everything but the coordinates.
func startGeoQuery(georel, geometry, geoproperty string, names Names) (*GeoQuery, error) {
	if names == nil {
		names = CanonicalNames
	}
	g := &GeoQuery{maxDist: -1, minDist: -1, geometryType: geometry}
	if err := g.parseRel(georel); err != nil {
		return nil, err
	}
	if geoproperty == "" {
		geoproperty = "location"
	}
	if !validName(geoproperty) {
		return nil, badData("geoproperty: %q is not a valid attribute name", geoproperty)
	}
	g.prop = names.Canon(geoproperty)
	if _, ok := geometryTypes[geometry]; !ok || geometry == "GeometryCollection" {
		if geometry == "" {
			return nil, badData("geometry: missing (Point, MultiPoint, LineString, MultiLineString, Polygon or MultiPolygon)")
		}
		return nil, badData("geometry: %q is not one of Point, MultiPoint, LineString, MultiLineString, Polygon, MultiPolygon", geometry)
	}
	return g, nil
}

// countPositions counts the innermost arrays (positions), stopping early
// past the bound.
func countPositions(v any, depth int) int {
	arr, ok := v.([]any)
	if !ok || depth > 4 {
		return 0
	}
	if len(arr) > 0 {
		if _, inner := arr[0].([]any); !inner {
			return 1
		}
	}
	n := 0
	for _, x := range arr {
		n += countPositions(x, depth+1)
		if n > MaxGeoPositions {
			break
		}
	}
	return n
}

func (g *GeoQuery) parseRel(s string) error {
	if s == "" {
		return badData("georel: missing (near;maxDistance==m, near;minDistance==m, within, contains, intersects, equals, disjoint, overlaps)")
	}
	parts := strings.Split(s, ";")
	rel, ok := geoRelNames[parts[0]]
	if !ok {
		return badData("georel: character 1: %q is not a relation (near, within, contains, intersects, equals, disjoint, overlaps)", parts[0])
	}
	g.rel = rel
	off := len(parts[0]) + 1
	if rel != relNear {
		if len(parts) > 1 {
			return badData("georel: character %d: %s takes no modifier", off+1, parts[0])
		}
		return nil
	}
	if len(parts) == 1 {
		return badData("georel: near needs maxDistance==metres or minDistance==metres (e.g. near;maxDistance==2000)")
	}
	for _, p := range parts[1:] {
		name, val, found := strings.Cut(p, "==")
		if !found {
			// NGSIv2 clients write maxDistance:2000.
			name, val, found = strings.Cut(p, ":")
		}
		var dst *float64
		switch name {
		case "maxDistance":
			dst = &g.maxDist
		case "minDistance":
			dst = &g.minDist
		default:
			return badData("georel: character %d: %q is not maxDistance==metres or minDistance==metres", off+1, p)
		}
		if !found {
			return badData("georel: character %d: %s needs == and a distance in metres", off+1, name)
		}
		if *dst >= 0 {
			return badData("georel: character %d: %s given twice", off+1, name)
		}
		f, err := strconv.ParseFloat(val, 64)
		if err != nil || !isJSONNumber(val) || f < 0 || math.IsInf(f, 0) {
			return badData("georel: character %d: %s must be a non-negative number of metres, got %q", off+len(name)+3, name, val)
		}
		*dst = f
		off += len(p) + 1
	}
	return nil
}

// Property returns the canonical name of the GeoProperty the query is about.
func (g *GeoQuery) Property() string { return g.prop }

// Relation returns the georel's relation: near, within, contains,
// intersects, equals, disjoint or overlaps.
func (g *GeoQuery) Relation() string {
	for n, r := range geoRelNames {
		if r == g.rel {
			return n
		}
	}
	return ""
}

// Distances returns the near relation's maxDistance and minDistance in
// metres; an absent one is -1.
func (g *GeoQuery) Distances() (maxDistance, minDistance float64) { return g.maxDist, g.minDist }

// BBox returns a lon/lat box that the geometry of every matching entity
// intersects, for a spatial index; ok is false when there is none (disjoint,
// near with minDistance only). When minLon > maxLon the box crosses the
// antimeridian (as in RFC 7946 clause 5.2): it covers longitudes from minLon
// to 180 and from -180 to maxLon.
func (g *GeoQuery) BBox() (minLon, minLat, maxLon, maxLat float64, ok bool) {
	switch g.rel {
	case relDisjoint:
		return 0, 0, 0, 0, false
	case relNear:
		if g.maxDist < 0 {
			return 0, 0, 0, 0, false
		}
		if g.refPoint() {
			p := g.ref.pts[0]
			return capBBox(p.x, p.y, g.maxDist)
		}
		return boxBBox(g.ref.box, g.maxDist)
	}
	b := g.ref.box
	minLat, maxLat = b.minY, b.maxY
	if b.maxX-b.minX >= 360-geoEps {
		return -180, minLat, 180, maxLat, true
	}
	minLon, maxLon = wrapLon(b.minX-geoEps), wrapLon(b.maxX+geoEps)
	return minLon, max(-90, minLat-geoEps), maxLon, min(90, maxLat+geoEps), true
}

// capBBox is the box around the spherical cap of radius d metres at lon, lat.
func capBBox(lon, lat, d float64) (float64, float64, float64, float64, bool) {
	ang := d*(1+1e-9)/earthRadius + 1e-12 // a hair wider than the cap
	dLat := ang * 180 / math.Pi
	if ang >= math.Pi || lat+dLat >= 90 || lat-dLat <= -90 {
		// The cap holds a pole: every longitude.
		return -180, max(-90, lat-dLat), 180, min(90, lat+dLat), true
	}
	s := math.Sin(ang) / math.Cos(lat*math.Pi/180)
	if s >= 1 {
		return -180, lat - dLat, 180, lat + dLat, true
	}
	dLon := math.Asin(s) * 180 / math.Pi
	return wrapLon(lon - dLon), lat - dLat, wrapLon(lon + dLon), lat + dLat, true
}

// boxBBox is a box around every point within d metres of the lon/lat box b
// (in unwrapped longitudes): its latitudes widened by d, its longitudes by
// the most d can span at the highest latitude reached.
func boxBBox(b box, d float64) (float64, float64, float64, float64, bool) {
	ang := d*(1+1e-9)/earthRadius + 1e-12
	dLat := ang * 180 / math.Pi
	minLat, maxLat := b.minY-dLat, b.maxY+dLat
	if ang >= math.Pi || minLat <= -90 || maxLat >= 90 {
		return -180, max(-90, minLat), 180, min(90, maxLat), true
	}
	s := math.Sin(ang) / math.Cos(max(math.Abs(minLat), math.Abs(maxLat))*math.Pi/180)
	if s >= 1 {
		return -180, minLat, 180, maxLat, true
	}
	dLon := math.Asin(s) * 180 / math.Pi
	if b.maxX-b.minX+2*dLon >= 360 {
		return -180, minLat, 180, maxLat, true
	}
	return wrapLon(b.minX - dLon), minLat, wrapLon(b.maxX + dLon), maxLat, true
}

// refPoint reports whether the reference geometry is a single point.
func (g *GeoQuery) refPoint() bool {
	return len(g.ref.pts) == 1 && len(g.ref.lines) == 0 && len(g.ref.polys) == 0
}

// wrapLon brings a longitude into [-180, 180].
func wrapLon(x float64) float64 {
	if x > 180 || x < -180 {
		x = nearLon(x, 0)
	}
	return x
}

// nearLon shifts longitude v by a multiple of 360° to within 180° of x.
// (Arithmetic, not a loop: an infinite or NaN input cannot hang it.)
func nearLon(v, x float64) float64 {
	return v + 360*math.Round((x-v)/360)
}

// DistanceMeters is the great-circle distance between two lon/lat points in
// metres, on a sphere of radius 6,371,008.8 m (haversine).
func DistanceMeters(lon1, lat1, lon2, lat2 float64) float64 {
	const rad = math.Pi / 180
	p1, p2 := lat1*rad, lat2*rad
	sLat := math.Sin((p2 - p1) / 2)
	sLon := math.Sin((lon2 - lon1) * rad / 2)
	a := sLat*sLat + math.Cos(p1)*math.Cos(p2)*sLon*sLon
	return 2 * earthRadius * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Match reports whether the entity's geoproperty satisfies the query. An
// entity without the property (or whose value is no geometry) does not
// match, whatever the relation. A multi-instance property matches when any
// instance does.
func (g *GeoQuery) Match(e *Entity) bool {
	for _, a := range e.Attrs[g.prop] {
		m, ok := a.Value.(map[string]any)
		if !ok {
			continue
		}
		if t, _ := m["type"].(string); t == "Point" {
			// The common case, without building a geometry.
			if p, ok := position(m["coordinates"]); ok && g.matchPoint(p) {
				return true
			}
			continue
		}
		if ValidateGeometry(m) != nil {
			continue
		}
		if g.matchGeom(buildGeom(m)) {
			return true
		}
	}
	return false
}

func (g *GeoQuery) matchPoint(p pt) bool {
	if g.rel == relNear {
		var d float64
		if g.refPoint() {
			q := g.ref.pts[0]
			d = DistanceMeters(q.x, q.y, p.x, p.y)
		} else {
			d = distanceTo(p, g.ref)
		}
		return (g.maxDist < 0 || d <= g.maxDist) && (g.minDist < 0 || d >= g.minDist)
	}
	eg := geom{pts: []pt{p}}
	eg.computeBox()
	return g.matchGeom(&eg)
}

func (g *GeoQuery) matchGeom(eg *geom) bool {
	if g.rel == relNear {
		var d float64
		if g.refPoint() {
			d = distanceTo(g.ref.pts[0], eg)
		} else {
			eg.alignTo(g.ref.centerX())
			d = geomDistance(eg, g.ref)
		}
		return (g.maxDist < 0 || d <= g.maxDist) && (g.minDist < 0 || d >= g.minDist)
	}
	eg.alignTo(g.ref.centerX())
	switch g.rel {
	case relIntersects:
		return intersects(eg, g.ref)
	case relDisjoint:
		return !intersects(eg, g.ref)
	case relWithin:
		return within(eg, g.ref)
	case relContains:
		return within(g.ref, eg)
	case relEquals:
		return within(eg, g.ref) && within(g.ref, eg)
	case relOverlaps:
		return overlaps(eg, g.ref)
	}
	return false
}

// ---- geometry in the lon/lat plane ----

type pt struct{ x, y float64 } // lon, lat

type box struct{ minX, minY, maxX, maxY float64 }

func (b box) intersects(o box) bool {
	return b.minX <= o.maxX+geoEps && o.minX <= b.maxX+geoEps && b.minY <= o.maxY+geoEps && o.minY <= b.maxY+geoEps
}

func (b box) contains(p pt) bool {
	return p.x >= b.minX-geoEps && p.x <= b.maxX+geoEps && p.y >= b.minY-geoEps && p.y <= b.maxY+geoEps
}

// geom is a (multi-part) geometry: points, lines and polygons (each a shell
// and holes); a GeometryCollection fills several of them.
type geom struct {
	pts   []pt
	lines [][]pt
	polys [][][]pt
	box   box
}

func position(v any) (pt, bool) {
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return pt{}, false
	}
	x, ok1 := numberValue(arr[0])
	y, ok2 := numberValue(arr[1])
	return pt{x, y}, ok1 && ok2 && x >= -180 && x <= 180 && y >= -90 && y <= 90
}

func positions(v any) []pt {
	arr, _ := v.([]any)
	out := make([]pt, 0, len(arr))
	for _, x := range arr {
		if p, ok := position(x); ok {
			out = append(out, p)
		}
	}
	return unwrap(out)
}

// unwrap removes jumps of more than 180° between consecutive longitudes.
// An edge from -180 to 180 (or back) is kept: it runs along a whole
// parallel, as in a box around a pole written [[-180,80],[180,80],...].
func unwrap(ps []pt) []pt {
	if len(ps) == 0 {
		return ps
	}
	prevRaw := ps[0].x
	for i := 1; i < len(ps); i++ {
		raw := ps[i].x
		d := raw - prevRaw
		if math.Abs(d) != 360 {
			d = nearLon(d, 0)
		}
		ps[i].x = ps[i-1].x + d
		prevRaw = raw
	}
	return ps
}

// buildGeom reads a valid GeoJSON geometry.
func buildGeom(m map[string]any) *geom {
	g := &geom{}
	g.add(m)
	g.computeBox()
	return g
}

func (g *geom) add(m map[string]any) {
	c := m["coordinates"]
	arr, _ := c.([]any)
	switch m["type"] {
	case "Point":
		if p, ok := position(c); ok {
			g.pts = append(g.pts, p)
		}
	case "MultiPoint":
		for _, x := range arr {
			if p, ok := position(x); ok {
				g.pts = append(g.pts, p)
			}
		}
	case "LineString":
		g.lines = append(g.lines, positions(c))
	case "MultiLineString":
		for _, l := range arr {
			g.lines = append(g.lines, positions(l))
		}
	case "Polygon":
		g.addPolygon(arr)
	case "MultiPolygon":
		for _, p := range arr {
			rings, _ := p.([]any)
			g.addPolygon(rings)
		}
	case "GeometryCollection":
		gs, _ := m["geometries"].([]any)
		for _, x := range gs {
			if gm, ok := x.(map[string]any); ok {
				g.add(gm)
			}
		}
	}
}

func (g *geom) addPolygon(rings []any) {
	poly := make([][]pt, 0, len(rings))
	for i, r := range rings {
		ring := positions(r)
		if i > 0 && len(poly) > 0 {
			// Holes sit next to their shell.
			shiftNear(ring, midX(poly[0]))
		}
		poly = append(poly, ring)
	}
	g.polys = append(g.polys, poly)
}

func midX(ps []pt) float64 {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range ps {
		lo, hi = min(lo, p.x), max(hi, p.x)
	}
	return (lo + hi) / 2
}

// shiftNear moves a part by a multiple of 360° so that its middle is within
// 180° of x.
func shiftNear(ps []pt, x float64) {
	if len(ps) == 0 {
		return
	}
	m := midX(ps)
	if d := nearLon(m, x) - m; d != 0 && !math.IsNaN(d) {
		for i := range ps {
			ps[i].x += d
		}
	}
}

// alignTo shifts every part (a point, a line, a polygon with its holes) by
// a multiple of 360° so that it lies within 180° of longitude x.
func (g *geom) alignTo(x float64) {
	for i := range g.pts {
		if v := nearLon(g.pts[i].x, x); !math.IsNaN(v) {
			g.pts[i].x = v
		}
	}
	for _, l := range g.lines {
		shiftNear(l, x)
	}
	for _, p := range g.polys {
		if len(p) == 0 {
			continue
		}
		before := p[0][0].x
		shiftNear(p[0], x)
		if d := p[0][0].x - before; d != 0 {
			for _, h := range p[1:] {
				for i := range h {
					h[i].x += d
				}
			}
		}
	}
	g.computeBox()
}

// alignParts puts the parts of a multi-part geometry next to its first part
// (a MultiPolygon split at the antimeridian becomes one piece).
func (g *geom) alignParts() {
	x := math.NaN()
	switch {
	case len(g.polys) > 0 && len(g.polys[0]) > 0:
		x = midX(g.polys[0][0])
	case len(g.lines) > 0:
		x = midX(g.lines[0])
	case len(g.pts) > 0:
		x = g.pts[0].x
	}
	if !math.IsNaN(x) {
		g.alignTo(x)
	}
}

func (g *geom) centerX() float64 { return (g.box.minX + g.box.maxX) / 2 }

func (g *geom) computeBox() {
	b := box{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	g.eachVertex(func(p pt) {
		b.minX, b.minY = min(b.minX, p.x), min(b.minY, p.y)
		b.maxX, b.maxY = max(b.maxX, p.x), max(b.maxY, p.y)
	})
	g.box = b
}

func (g *geom) eachVertex(f func(pt)) {
	for _, p := range g.pts {
		f(p)
	}
	for _, l := range g.lines {
		for _, p := range l {
			f(p)
		}
	}
	for _, poly := range g.polys {
		for _, r := range poly {
			for _, p := range r {
				f(p)
			}
		}
	}
}

// eachSegment calls f with every segment of lines and rings until f
// returns false; it reports whether it went through all of them.
func (g *geom) eachSegment(f func(a, b pt) bool) bool {
	for _, l := range g.lines {
		for i := 1; i < len(l); i++ {
			if !f(l[i-1], l[i]) {
				return false
			}
		}
	}
	for _, poly := range g.polys {
		for _, r := range poly {
			for i := 1; i < len(r); i++ {
				if !f(r[i-1], r[i]) {
					return false
				}
			}
		}
	}
	return true
}

func (g *geom) dim() int {
	switch {
	case len(g.polys) > 0:
		return 2
	case len(g.lines) > 0:
		return 1
	}
	return 0
}

// Locations of a point with respect to a geometry.
const (
	locExterior = iota
	locBoundary
	locInterior
)

func near(a, b pt) bool { return math.Abs(a.x-b.x) <= geoEps && math.Abs(a.y-b.y) <= geoEps }

func cross(o, a, b pt) float64 { return (a.x-o.x)*(b.y-o.y) - (a.y-o.y)*(b.x-o.x) }

// onSegment reports whether p lies on the segment ab.
func onSegment(p, a, b pt) bool {
	if p.x < min(a.x, b.x)-geoEps || p.x > max(a.x, b.x)+geoEps || p.y < min(a.y, b.y)-geoEps || p.y > max(a.y, b.y)+geoEps {
		return false
	}
	l := math.Hypot(b.x-a.x, b.y-a.y)
	if l <= geoEps {
		return near(p, a)
	}
	return math.Abs(cross(a, b, p))/l <= geoEps
}

// segmentsIntersect reports whether segments ab and cd share a point, and
// whether they cross properly (at one point inside both).
func segmentsIntersect(a, b, c, d pt) (any, proper bool) {
	d1, d2 := cross(c, d, a), cross(c, d, b)
	d3, d4 := cross(a, b, c), cross(a, b, d)
	if (d1 > 0 && d2 < 0 || d1 < 0 && d2 > 0) && (d3 > 0 && d4 < 0 || d3 < 0 && d4 > 0) {
		proper = !onSegment(a, c, d) && !onSegment(b, c, d) && !onSegment(c, a, b) && !onSegment(d, a, b)
		return true, proper
	}
	return onSegment(a, c, d) || onSegment(b, c, d) || onSegment(c, a, b) || onSegment(d, a, b), false
}

// inRing reports whether p is strictly inside the ring (even-odd rule); the
// boundary is tested apart.
func inRing(p pt, r []pt) bool {
	in := false
	for i, j := 0, len(r)-1; i < len(r); j, i = i, i+1 {
		a, b := r[i], r[j]
		if (a.y > p.y) != (b.y > p.y) && p.x < (b.x-a.x)*(p.y-a.y)/(b.y-a.y)+a.x {
			in = !in
		}
	}
	return in
}

func onRing(p pt, r []pt) bool {
	for i := 1; i < len(r); i++ {
		if onSegment(p, r[i-1], r[i]) {
			return true
		}
	}
	return false
}

// locate places p in the interior, on the boundary or in the exterior of g.
func locate(p pt, g *geom) int {
	if !g.box.contains(p) {
		return locExterior
	}
	best := locExterior
	for _, q := range g.pts {
		if near(p, q) {
			return locInterior
		}
	}
	for _, l := range g.lines {
		for i := 1; i < len(l); i++ {
			if onSegment(p, l[i-1], l[i]) {
				if (near(p, l[0]) || near(p, l[len(l)-1])) && !near(l[0], l[len(l)-1]) {
					best = locBoundary
				} else {
					return locInterior
				}
			}
		}
	}
	for _, poly := range g.polys {
		if len(poly) == 0 {
			continue
		}
		onB := false
		for _, r := range poly {
			if onRing(p, r) {
				onB = true
				break
			}
		}
		if onB {
			best = locBoundary
			continue
		}
		if !inRing(p, poly[0]) {
			continue
		}
		inHole := false
		for _, h := range poly[1:] {
			if inRing(p, h) {
				inHole = true
				break
			}
		}
		if !inHole {
			return locInterior
		}
	}
	return best
}

// samples calls f with the vertices of g and the midpoints of its segments.
func (g *geom) samples(f func(pt) bool) bool {
	ok := true
	g.eachVertex(func(p pt) {
		if ok {
			ok = f(p)
		}
	})
	if !ok {
		return false
	}
	return g.eachSegment(func(a, b pt) bool { return f(pt{(a.x + b.x) / 2, (a.y + b.y) / 2}) })
}

func intersects(a, b *geom) bool {
	if !a.box.intersects(b.box) {
		return false
	}
	hit := false
	a.eachVertex(func(p pt) { hit = hit || locate(p, b) != locExterior })
	if hit {
		return true
	}
	b.eachVertex(func(p pt) { hit = hit || locate(p, a) != locExterior })
	if hit {
		return true
	}
	return !a.eachSegment(func(p, q pt) bool {
		sb := box{min(p.x, q.x), min(p.y, q.y), max(p.x, q.x), max(p.y, q.y)}
		if !sb.intersects(b.box) {
			return true
		}
		return b.eachSegment(func(r, s pt) bool {
			x, _ := segmentsIntersect(p, q, r, s)
			return !x
		})
	})
}

// properCrossing reports whether a segment of a crosses a segment of b at a
// point inside both.
func properCrossing(a, b *geom) bool {
	return !a.eachSegment(func(p, q pt) bool {
		return b.eachSegment(func(r, s pt) bool {
			_, proper := segmentsIntersect(p, q, r, s)
			return !proper
		})
	})
}

// within reports whether a lies within b: no point of a outside b, and the
// interiors meet. Each segment of a is cut where it meets the edges of b,
// and the middle of every piece is located in b.
func within(a, b *geom) bool {
	if a.dim() > b.dim() || !a.box.intersects(b.box) {
		return false
	}
	interior := false
	test := func(p pt) bool {
		l := locate(p, b)
		interior = interior || l == locInterior
		return l != locExterior
	}
	ok := true
	a.eachVertex(func(p pt) { ok = ok && test(p) })
	if !ok {
		return false
	}
	var ts []float64
	if !a.eachSegment(func(p, q pt) bool {
		ts = append(ts[:0], 0, 1)
		b.eachSegment(func(r, s pt) bool {
			ts = appendCuts(ts, p, q, r, s)
			return true
		})
		slices.Sort(ts)
		for i := 1; i < len(ts); i++ {
			if ts[i]-ts[i-1] < 1e-12 {
				continue
			}
			m := (ts[i] + ts[i-1]) / 2
			if !test(pt{p.x + m*(q.x-p.x), p.y + m*(q.y-p.y)}) {
				return false
			}
		}
		return true
	}) {
		return false
	}
	if a.dim() == 2 {
		// b's boundary must not pass through a's interior (a hole of b
		// inside a). Two equal polygons meet only on their boundaries.
		cut := false
		b.eachVertex(func(p pt) { cut = cut || locate(p, a) == locInterior })
		return !cut
	}
	return interior
}

// appendCuts appends the positions along pq (0 at p, 1 at q) where the
// segment rs meets it.
func appendCuts(ts []float64, p, q, r, s pt) []float64 {
	dx, dy := q.x-p.x, q.y-p.y
	ex, ey := s.x-r.x, s.y-r.y
	den := dx*ey - dy*ex
	if math.Abs(den) > 1e-18 {
		t := ((r.x-p.x)*ey - (r.y-p.y)*ex) / den
		u := ((r.x-p.x)*dy - (r.y-p.y)*dx) / den
		if t > 0 && t < 1 && u >= -1e-12 && u <= 1+1e-12 {
			ts = append(ts, t)
		}
		return ts
	}
	// Parallel: where r and s fall on pq, if collinear.
	l2 := dx*dx + dy*dy
	if l2 == 0 {
		return ts
	}
	for _, v := range [2]pt{r, s} {
		if onSegment(v, p, q) {
			if t := ((v.x-p.x)*dx + (v.y-p.y)*dy) / l2; t > 0 && t < 1 {
				ts = append(ts, t)
			}
		}
	}
	return ts
}

// overlaps reports whether a and b have the same dimension, their interiors
// meet, and neither lies within the other.
func overlaps(a, b *geom) bool {
	if a.dim() != b.dim() || !intersects(a, b) || within(a, b) || within(b, a) {
		return false
	}
	switch a.dim() {
	case 0:
		return true // they share a point, and each has a point the other lacks
	case 1:
		// They must share a stretch of line, not only crossing points.
		return !a.eachSegment(func(p, q pt) bool {
			return b.eachSegment(func(r, s pt) bool { return !sharedStretch(p, q, r, s) })
		})
	}
	inner := false
	a.samples(func(p pt) bool { inner = locate(p, b) == locInterior; return !inner })
	if inner {
		return true
	}
	b.samples(func(p pt) bool { inner = locate(p, a) == locInterior; return !inner })
	return inner || properCrossing(a, b)
}

// sharedStretch reports whether segments pq and rs are collinear and
// overlap along a stretch longer than geoEps.
func sharedStretch(p, q, r, s pt) bool {
	l := math.Hypot(s.x-r.x, s.y-r.y)
	if l <= geoEps || math.Abs(cross(r, s, p))/l > geoEps || math.Abs(cross(r, s, q))/l > geoEps {
		return false
	}
	// Positions along rs.
	at := func(v pt) float64 { return ((v.x-r.x)*(s.x-r.x) + (v.y-r.y)*(s.y-r.y)) / l }
	tp, tq := at(p), at(q)
	return min(max(tp, tq), l)-max(min(tp, tq), 0) > geoEps
}

// ---- distances on the sphere ----

type vec3 struct{ x, y, z float64 }

func toVec(p pt) vec3 {
	lon, lat := p.x*math.Pi/180, p.y*math.Pi/180
	return vec3{math.Cos(lat) * math.Cos(lon), math.Cos(lat) * math.Sin(lon), math.Sin(lat)}
}

func (a vec3) cross(b vec3) vec3 {
	return vec3{a.y*b.z - a.z*b.y, a.z*b.x - a.x*b.z, a.x*b.y - a.y*b.x}
}

func (a vec3) dot(b vec3) float64 { return a.x*b.x + a.y*b.y + a.z*b.z }

func (a vec3) norm() float64 { return math.Sqrt(a.dot(a)) }

// angle is the angle between two unit vectors, accurate at all sizes.
func angle(a, b vec3) float64 { return math.Atan2(a.cross(b).norm(), a.dot(b)) }

// segmentDistance is the distance in metres from q to the great-circle arc
// from a to b (the shorter one).
func segmentDistance(q, a, b pt) float64 {
	va, vb, vq := toVec(a), toVec(b), toVec(q)
	n := va.cross(vb)
	nl := n.norm()
	da, db := angle(vq, va), angle(vq, vb)
	if nl < 1e-15 {
		return earthRadius * min(da, db)
	}
	n = vec3{n.x / nl, n.y / nl, n.z / nl}
	s := vq.dot(n)
	// The foot of the perpendicular from q on the great circle.
	f := vec3{vq.x - s*n.x, vq.y - s*n.y, vq.z - s*n.z}
	if fl := f.norm(); fl > 1e-15 {
		f = vec3{f.x / fl, f.y / fl, f.z / fl}
		if va.cross(f).dot(n) >= 0 && f.cross(vb).dot(n) >= 0 {
			return earthRadius * angle(vq, f)
		}
	}
	return earthRadius * min(da, db)
}

// distanceTo is the distance in metres from q to the nearest point of g: 0
// inside a polygon.
func distanceTo(q pt, g *geom) float64 {
	d := math.Inf(1)
	for _, p := range g.pts {
		d = min(d, DistanceMeters(q.x, q.y, p.x, p.y))
	}
	for _, l := range g.lines {
		if len(l) == 1 {
			d = min(d, DistanceMeters(q.x, q.y, l[0].x, l[0].y))
		}
	}
	g.eachSegment(func(a, b pt) bool {
		d = min(d, segmentDistance(q, a, b))
		return true
	})
	if len(g.polys) > 0 {
		// Inside a polygon: bring q next to the geometry first.
		qs := pt{nearLon(q.x, g.centerX()), q.y}
		pg := geom{polys: g.polys, box: g.box}
		if locate(qs, &pg) != locExterior {
			return 0
		}
	}
	return d
}

// geomDistance is the distance in metres between two geometries (aligned
// in longitude): 0 when they meet, else the least distance from a vertex of
// one to the other, where the nearest points of two disjoint shapes lie.
func geomDistance(a, b *geom) float64 {
	if intersects(a, b) {
		return 0
	}
	d := math.Inf(1)
	a.eachVertex(func(p pt) { d = min(d, distanceTo(p, b)) })
	b.eachVertex(func(p pt) { d = min(d, distanceTo(p, a)) })
	return d
}

// String describes the query, for logs and errors.
func (g *GeoQuery) String() string {
	s := g.Relation()
	if g.maxDist >= 0 {
		s += fmt.Sprintf(";maxDistance==%g", g.maxDist)
	}
	if g.minDist >= 0 {
		s += fmt.Sprintf(";minDistance==%g", g.minDist)
	}
	return fmt.Sprintf("georel=%s geometry=%s geoproperty=%s", s, g.geometryType, g.prop)
}
