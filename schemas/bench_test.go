package schemas

import (
	"encoding/json"
	"testing"

	"github.com/xeipuuv/gojsonschema"
)

// rate reports entities/s (wall clock) and cpu-ns/op (CPU time of the whole
// process per entity, GC included). Call it before the loop and call the
// returned function after it.
func rate(b *testing.B) func() {
	start := processCPU()
	return func() {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "entities/s")
		if cpu := processCPU() - start; cpu > 0 {
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}

// BenchmarkValidateAirQualityObserved validates a typical valid
// 15-attribute keyValues AirQualityObserved, decoded by json.Unmarshal (numbers
// as float64), through Model.Validate: what the write path pays per entity.
func BenchmarkValidateAirQualityObserved(b *testing.B) {
	m := mustModel(b, sharedRegistry(b), "AirQualityObserved")
	kv := readJSON(b, "AirQualityObserved.valid.json")
	b.ReportAllocs()
	done := rate(b)
	for b.Loop() {
		if vs, err := m.Validate(kv); err != nil || vs != nil {
			b.Fatal(vs, err)
		}
	}
	done()
}

// BenchmarkValidateAirQualityObservedInputs compares the ways of handing the
// same document to gojsonschema: Piazza's conversion of a decoded map
// (float64 or json.Number numbers), gojsonschema's own Go loader (JSON
// round trip) and bytes loader (pre-serialized document), and the floor:
// gojsonschema validating an already converted document. The
// gojsonschema-unrewritten cases use the schema as published, without the
// oneOf rewrite of optimize.go: gojsonschema alone.
func BenchmarkValidateAirQualityObservedInputs(b *testing.B) {
	m := mustModel(b, sharedRegistry(b), "AirQualityObserved")
	kv := readJSON(b, "AirQualityObserved.valid.json")
	kvNumbers := readJSONNumbers(b, "AirQualityObserved.valid.json")
	compact, err := json.Marshal(kv)
	if err != nil {
		b.Fatal(err)
	}
	converted, _, err := toInstance(kv, 0)
	if err != nil {
		b.Fatal(err)
	}
	check := func(b *testing.B, res *gojsonschema.Result, err error) {
		if err != nil || !res.Valid() {
			b.Fatal(err, res.Errors())
		}
	}
	b.Run("piazza/float64", func(b *testing.B) {
		b.ReportAllocs()
		done := rate(b)
		for b.Loop() {
			if vs, err := m.Validate(kv); err != nil || vs != nil {
				b.Fatal(vs, err)
			}
		}
		done()
	})
	b.Run("piazza/UseNumber", func(b *testing.B) {
		b.ReportAllocs()
		done := rate(b)
		for b.Loop() {
			if vs, err := m.Validate(kvNumbers); err != nil || vs != nil {
				b.Fatal(vs, err)
			}
		}
		done()
	})
	// gojsonschema alone on the schema as published (its oneOf kept).
	plain, err := compileWith(m.doc, sharedRegistry(b).lookupEmbedded, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("gojsonschema-unrewritten/BytesLoader", func(b *testing.B) {
		b.ReportAllocs()
		done := rate(b)
		for b.Loop() {
			res, err := plain.Validate(gojsonschema.NewBytesLoader(compact))
			check(b, res, err)
		}
		done()
	})
	b.Run("gojsonschema-unrewritten/converted", func(b *testing.B) {
		b.ReportAllocs()
		done := rate(b)
		for b.Loop() {
			res, err := plain.Validate(instanceLoader{JSONLoader: m.base, doc: converted})
			check(b, res, err)
		}
		done()
	})
	b.Run("gojsonschema/GoLoader", func(b *testing.B) {
		b.ReportAllocs()
		done := rate(b)
		for b.Loop() {
			res, err := m.schema.Validate(gojsonschema.NewGoLoader(kv))
			check(b, res, err)
		}
		done()
	})
	b.Run("gojsonschema/BytesLoader", func(b *testing.B) {
		b.ReportAllocs()
		done := rate(b)
		for b.Loop() {
			res, err := m.schema.Validate(gojsonschema.NewBytesLoader(compact))
			check(b, res, err)
		}
		done()
	})
	b.Run("gojsonschema/converted", func(b *testing.B) {
		b.ReportAllocs()
		done := rate(b)
		for b.Loop() {
			res, err := m.schema.Validate(instanceLoader{JSONLoader: m.base, doc: converted})
			check(b, res, err)
		}
		done()
	})
}

// BenchmarkValidateAirQualityObservedParallel runs the same validation on
// every core (GOMAXPROCS goroutines) with one shared *Model.
func BenchmarkValidateAirQualityObservedParallel(b *testing.B) {
	m := mustModel(b, sharedRegistry(b), "AirQualityObserved")
	kv := readJSON(b, "AirQualityObserved.valid.json")
	b.ReportAllocs()
	done := rate(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if vs, err := m.Validate(kv); err != nil || vs != nil {
				b.Error(vs, err)
				return
			}
		}
	})
	done()
}

// BenchmarkValidateInvalidAirQualityObserved validates the upstream example,
// which has two violations: the cost of building the report.
func BenchmarkValidateInvalidAirQualityObserved(b *testing.B) {
	m := mustModel(b, sharedRegistry(b), "AirQualityObserved")
	kv := readJSON(b, "examples/AirQualityObserved.example.json")
	b.ReportAllocs()
	done := rate(b)
	for b.Loop() {
		if vs, err := m.Validate(kv); err != nil || len(vs) != 2 {
			b.Fatal(vs, err)
		}
	}
	done()
}

// BenchmarkNewRegistry measures the start-up cost: compiling every embedded
// model.
func BenchmarkNewRegistry(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewRegistry(Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
