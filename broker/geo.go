package broker

import (
	"fmt"
)

// geometryTypes are the GeoJSON geometry types (RFC 7946, clause 3.1).
var geometryTypes = map[string]int{
	"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2,
	"Polygon": 2, "MultiPolygon": 3, "GeometryCollection": -1,
}

// isGeometry reports whether m looks like a GeoJSON geometry (a geometry type
// and coordinates or geometries); it does not validate it.
func isGeometry(m map[string]any) bool {
	t, _ := m["type"].(string)
	depth, ok := geometryTypes[t]
	if !ok {
		return false
	}
	if depth < 0 {
		_, has := m["geometries"]
		return has
	}
	_, has := m["coordinates"]
	return has
}

// ValidateGeometry checks that v is a GeoJSON geometry (RFC 7946) with
// positions in EPSG:4326 lon/lat: longitudes in [-180, 180], latitudes in
// [-90, 90], LineStrings of two or more positions, closed linear rings of
// four or more. The error says what is wrong and where.
func ValidateGeometry(v any) error {
	return validateGeometry(v, 0)
}

func validateGeometry(v any, depth int) error {
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("a GeoJSON geometry must be an object, not %s", jsonKind(v))
	}
	t, _ := m["type"].(string)
	want, ok := geometryTypes[t]
	if !ok {
		return fmt.Errorf("unknown GeoJSON geometry type %q", m["type"])
	}
	if want < 0 {
		if depth > 0 {
			return fmt.Errorf("nested GeometryCollection")
		}
		gs, ok := m["geometries"].([]any)
		if !ok {
			return fmt.Errorf("GeometryCollection needs a geometries array")
		}
		for i, g := range gs {
			if err := validateGeometry(g, depth+1); err != nil {
				return fmt.Errorf("geometries[%d]: %w", i, err)
			}
		}
		return nil
	}
	c, ok := m["coordinates"]
	if !ok {
		return fmt.Errorf("%s has no coordinates", t)
	}
	if err := validateCoords(t, c); err != nil {
		// The errors of positions and rings start with their path ("[0][1]: ...").
		return fmt.Errorf("%s coordinates%w", t, err)
	}
	return nil
}

func validateCoords(t string, c any) error {
	switch t {
	case "Point":
		return validatePosition(c)
	case "MultiPoint":
		return eachOf(c, 0, validatePosition)
	case "LineString":
		return eachOf(c, 2, validatePosition)
	case "MultiLineString":
		return eachOf(c, 0, func(l any) error { return eachOf(l, 2, validatePosition) })
	case "Polygon":
		return eachOf(c, 1, validateRing)
	case "MultiPolygon":
		return eachOf(c, 0, func(p any) error { return eachOf(p, 1, validateRing) })
	}
	return fmt.Errorf("unknown GeoJSON geometry type %q", t)
}

func eachOf(c any, min int, f func(any) error) error {
	arr, ok := c.([]any)
	if !ok {
		return fmt.Errorf(": expected an array, got %s", jsonKind(c))
	}
	if len(arr) < min {
		return fmt.Errorf(": expected at least %d elements, got %d", min, len(arr))
	}
	for i, x := range arr {
		if err := f(x); err != nil {
			return fmt.Errorf("[%d]%w", i, err)
		}
	}
	return nil
}

func validateRing(r any) error {
	arr, ok := r.([]any)
	if !ok {
		return fmt.Errorf(": a linear ring must be an array of positions")
	}
	if len(arr) < 4 {
		return fmt.Errorf(": a linear ring needs at least 4 positions, got %d", len(arr))
	}
	if err := eachOf(r, 4, validatePosition); err != nil {
		return err
	}
	first, last := arr[0].([]any), arr[len(arr)-1].([]any)
	for i := 0; i < 2; i++ {
		a, _ := numberValue(first[i])
		b, _ := numberValue(last[i])
		if a != b {
			return fmt.Errorf(": a linear ring must be closed (first and last positions equal)")
		}
	}
	return nil
}

func validatePosition(p any) error {
	arr, ok := p.([]any)
	if !ok {
		return fmt.Errorf(": a position must be an array [lon, lat], got %s", jsonKind(p))
	}
	if len(arr) < 2 || len(arr) > 3 {
		return fmt.Errorf(": a position needs 2 or 3 numbers, got %d", len(arr))
	}
	var xy [3]float64
	for i, x := range arr {
		f, ok := numberValue(x)
		if !ok {
			return fmt.Errorf(": position member %d is %s, not a number", i, jsonKind(x))
		}
		xy[i] = f
	}
	if xy[0] < -180 || xy[0] > 180 {
		return fmt.Errorf(": longitude %v out of range [-180, 180]", xy[0])
	}
	if xy[1] < -90 || xy[1] > 90 {
		return fmt.Errorf(": latitude %v out of range [-90, 90]", xy[1])
	}
	return nil
}

// jsonKind names the JSON kind of a decoded value, for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		if _, ok := numberValue(v); ok {
			return "a number"
		}
	}
	return fmt.Sprintf("%T", v)
}
