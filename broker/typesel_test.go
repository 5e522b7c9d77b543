package broker

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTypeSelection(t *testing.T) {
	names := mapNames{"Building": "https://ex.org/Building"}
	cases := []struct {
		sel   string
		types []string
		want  bool
		anyOf string
	}{
		{"Building", []string{"https://ex.org/Building"}, true, "https://ex.org/Building"},
		{"Building", []string{"Building"}, false, "https://ex.org/Building"},
		{"Parking", []string{"Parking", "X"}, true, "Parking"},
		{"Parking,Shop", []string{"Shop"}, true, "Parking,Shop"},
		{"Parking|Shop", []string{"Shop"}, true, "Parking,Shop"},
		{"Parking,Shop", []string{"Bar"}, false, "Parking,Shop"},
		{"(Parking;Shop)", []string{"Shop"}, false, "Parking"},
		{"(Parking;Shop)", []string{"Shop", "Parking"}, true, "Parking"},
		{"Parking;Shop", []string{"Shop", "Parking"}, true, "Parking"},
		{"(Parking;Shop)|Bar", []string{"Bar"}, true, "Parking,Bar"},
		{"(Parking;Shop),Bar", []string{"Parking"}, false, "Parking,Bar"},
		{"(A,B);(C|D)", []string{"B", "D"}, true, "A,B"},
		{"(A,B);C", []string{"B", "D"}, false, "C"},
		{"https://smartdatamodels.org/dataModel.Environment/AirQualityObserved", []string{"https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"}, true, "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"},
		{"*", []string{"Anything"}, true, ""},
		{" A , B ", []string{"B"}, true, "A,B"},
	}
	for _, c := range cases {
		t.Run(c.sel, func(t *testing.T) {
			s, err := ParseTypeSelection(c.sel, names)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Match(c.types); got != c.want {
				t.Errorf("Match(%q) = %v, want %v", c.types, got, c.want)
			}
			if got := strings.Join(s.AnyOf(), ","); got != c.anyOf {
				t.Errorf("AnyOf = %s, want %s", got, c.anyOf)
			}
			// Every match has one of AnyOf.
			if c.want && !s.All() && !slices.ContainsFunc(c.types, func(x string) bool { return slices.Contains(s.AnyOf(), x) }) {
				t.Errorf("a match has none of AnyOf %v", s.AnyOf())
			}
		})
	}
	s, _ := ParseTypeSelection("(A;B)|A|C", nil)
	if got := strings.Join(s.Types(), ","); got != "A,B,C" {
		t.Errorf("Types = %s", got)
	}
}

func TestTypeSelectionErrors(t *testing.T) {
	cases := []struct{ sel, detail string }{
		{"", "empty"},
		{"A,", "character 3: expected a type, found the end"},
		{",A", "character 1: expected a type"},
		{"(A;B", "character 1: '(' is never closed"},
		{"A)", "character 2: ')' without"},
		{"A;*", `character 3: type "*": '*' selects every type`},
		{"@type", "not a valid type name"},
		{"A B", "unexpected 'B'"},
		{"A(B)", "unexpected '('"},
		{"A<B", "not a valid type name"},
	}
	for _, c := range cases {
		t.Run(c.sel, func(t *testing.T) {
			_, err := ParseTypeSelection(c.sel, nil)
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

func FuzzParseTypeSelection(f *testing.F) {
	for _, s := range []string{"A", "A,B", "(A;B)", "A;B", "(A;B)|C", "*", "https://x.org/T"} {
		f.Add(s)
	}
	typeSets := [][]string{nil, {"A"}, {"A", "B"}, {"C"}}
	f.Fuzz(func(t *testing.T, sel string) {
		start := time.Now()
		s, err := ParseTypeSelection(sel, nil)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("ParseTypeSelection took %v", d)
		}
		if err != nil {
			var be *Error
			if !errors.As(err, &be) || be.Kind != ErrBadRequestData || be.Detail == "" {
				t.Fatalf("error %v is not a BadRequestData *Error", err)
			}
			return
		}
		any := s.AnyOf()
		for _, ts := range typeSets {
			if s.Match(ts) && !s.All() && !slices.ContainsFunc(ts, func(x string) bool { return slices.Contains(any, x) }) {
				t.Fatalf("%q matches %v, which has none of AnyOf %v", sel, ts, any)
			}
		}
		// Every type named is a candidate on its own.
		for _, ty := range s.Types() {
			s.Match([]string{ty})
		}
	})
}
