package fastjson

import (
	"reflect"
	"strings"
	"testing"
)

func TestSplitArray(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string // nil: not ok
	}{
		{`[]`, []string{}},
		{` [ 1 , "a" ,{"b":[2,{}]}, null,true,false,-0.5e3 ] `, []string{`1`, `"a"`, `{"b":[2,{}]}`, `null`, `true`, `false`, `-0.5e3`}},
		{`{"a":1}`, nil},
		{`"x"`, nil},
		{`[1,]`, nil},
		{`[1 2]`, nil},
		{`[1] x`, nil},
		{`[{"a" 1}]`, nil},
		{`["\x01"]`, nil},
		{`[01]`, nil},
		{`[`, nil},
		{``, nil},
		{strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth), []string{strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1)}},
		{strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), nil},
	} {
		t.Run(tc.in[:min(len(tc.in), 20)], func(t *testing.T) {
			got, ok := SplitArray([]byte(tc.in))
			if ok != (tc.want != nil) {
				t.Fatalf("ok = %v, want %v", ok, tc.want != nil)
			}
			if !ok {
				return
			}
			gs := make([]string, len(got))
			for i, g := range got {
				gs[i] = string(g)
			}
			if !reflect.DeepEqual(gs, tc.want) {
				t.Fatalf("got %q, want %q", gs, tc.want)
			}
		})
	}
}

func TestIter(t *testing.T) {
	var it Iter
	defer it.Release()
	it.Reset([]byte(` {"id":"urn:a","a":{"type":"Property","value":[1,{"x":null}]},"b":{}} `))
	if !it.Object() {
		t.Fatal("Object")
	}
	var got []string
	for {
		k, more, ok := it.Member()
		if !ok {
			t.Fatal("Member failed")
		}
		if !more {
			break
		}
		got = append(got, k)
		switch k {
		case "id":
			if s, ok := it.String(); !ok || s != "urn:a" {
				t.Fatalf("String = %q %v", s, ok)
			}
		default:
			if !it.Object() {
				t.Fatal("inner Object")
			}
			for {
				k2, more, ok := it.Member()
				if !ok {
					t.Fatal("inner Member failed")
				}
				if !more {
					break
				}
				got = append(got, k+"."+k2)
				if _, ok := it.Value(); !ok {
					t.Fatal("Value")
				}
			}
		}
	}
	if !it.Done() {
		t.Fatal("not Done")
	}
	if want := []string{"id", "a", "a.type", "a.value", "b"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("members %q, want %q", got, want)
	}
	for _, bad := range []string{`{"a" 1}`, `{"a":1 "b":2}`, `{"a":1,}`, `[`, `{"a":1}x`} {
		it.Reset([]byte(bad))
		ok := it.Object()
		for ok {
			var more bool
			if _, more, ok = it.Member(); !ok || !more {
				break
			}
			_, ok = it.Value()
		}
		if ok && it.Done() {
			t.Errorf("%s: read as a whole object", bad)
		}
	}
}

// FuzzSplitArray checks SplitArray against Decode: it succeeds exactly when
// Decode returns an array, and each element decodes to that array's element.
func FuzzSplitArray(f *testing.F) {
	for _, s := range []string{`[]`, `[1,"a",{"b":[2]}]`, `[1,]`, `{"a":1}`, `[{"a":"\ud800"}, -0.0e1]`, ` [ [ ] ] `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		elems, ok := SplitArray(data)
		v, err := Decode(data)
		arr, isArr := v.([]any)
		if ok != (err == nil && isArr) {
			t.Fatalf("SplitArray ok = %v, Decode err = %v, array = %v", ok, err, isArr)
		}
		if !ok {
			return
		}
		if len(elems) != len(arr) {
			t.Fatalf("%d elements, Decode has %d", len(elems), len(arr))
		}
		for i, e := range elems {
			ev, err := Decode(e)
			if err != nil || !reflect.DeepEqual(ev, arr[i]) {
				t.Fatalf("element %d %q: %v %v, want %v", i, e, ev, err, arr[i])
			}
		}
	})
}

func TestIterSkip(t *testing.T) {
	var it Iter
	defer it.Release()
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{`{"a":[1,{"b":"\u00e9"}],"c":-1e5,"d":"x"}`, true},
		{`{"a":[1,]}`, false},
		{`{"a":"\x01"}`, false},
		{`{"a":01}`, false},
		{`{"a":tru}`, false},
	} {
		it.Reset([]byte(tc.doc))
		ok := it.Object()
		var keys []string
		for ok {
			var k string
			var more bool
			if k, more, ok = it.Member(); !ok || !more {
				break
			}
			keys = append(keys, k)
			if k == "d" {
				_, ok = it.String()
			} else {
				ok = it.Skip()
			}
		}
		if got := ok && it.Done(); got != tc.ok {
			t.Errorf("%s: read = %v (members %q), want %v", tc.doc, got, keys, tc.ok)
		}
	}
}
