package fastjson

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// corpus returns the fixture documents: the Smart Data Models schemas and
// examples and this package's NGSI-LD entities.
func corpus(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("testdata/smartdatamodels/*.json")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("testdata/*.json")
	names = append(names, more...)
	if len(names) < 13 {
		t.Fatalf("found only %d fixture files", len(names))
	}
	docs := make(map[string][]byte, len(names))
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		docs[name] = b
	}
	return docs
}

// agree fails the test unless Decode and encoding/json agree on data.
func agree(t *testing.T, name string, data []byte) {
	t.Helper()
	if d := diverge(data); d != "" {
		t.Errorf("%s %.80q: %s", name, data, d)
	}
}

// TestEquivalentOnCorpus decodes every fixture, its prefixes (each must
// fail like encoding/json) and variants with one byte changed.
func TestEquivalentOnCorpus(t *testing.T) {
	for name, doc := range corpus(t) {
		t.Run(filepath.Base(name), func(t *testing.T) {
			if _, err := Decode(doc); err != nil {
				t.Fatalf("fixture does not decode: %v", err)
			}
			agree(t, "whole", doc)
			r := rand.New(rand.NewPCG(1, uint64(len(doc))))
			// Every prefix of a small document; a sample of a large one's.
			for i := range len(doc) {
				if len(doc) <= 2048 || r.IntN(len(doc)) < 400 {
					agree(t, "prefix "+strconv.Itoa(i), doc[:i])
				}
			}
			mutated := make([]byte, len(doc))
			for i := range 500 {
				copy(mutated, doc)
				mutated[r.IntN(len(doc))] = interesting[r.IntN(len(interesting))]
				agree(t, "mutation "+strconv.Itoa(i), mutated)
			}
		})
	}
}

// interesting are bytes that change the meaning of a JSON document.
var interesting = []byte("{}[]:,\"\\ \t\n0123456789-+.eEtrufalsn/ux\x00\x1f\x7f\x80\xbf\xc3\xed\xf0\xff")

// TestEquivalentOnGenerated compares Decode with encoding/json on random
// documents built from every JSON construct, and on broken copies of them.
func TestEquivalentOnGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(2026, 5))
	var b bytes.Buffer
	for i := range 3000 {
		b.Reset()
		genValue(r, &b, 0)
		doc := b.Bytes()
		if _, err := Decode(doc); err != nil {
			t.Fatalf("generated document %d does not decode: %v\n%q", i, err, doc)
		}
		agree(t, fmt.Sprintf("document %d", i), doc)
		broken := bytes.Clone(doc)
		broken[r.IntN(len(broken))] = interesting[r.IntN(len(interesting))]
		agree(t, fmt.Sprintf("broken document %d", i), broken)
		agree(t, fmt.Sprintf("cut document %d", i), doc[:r.IntN(len(doc))])
	}
}

// genValue writes a random valid JSON value.
func genValue(r *rand.Rand, b *bytes.Buffer, depth int) {
	genSpace(r, b)
	k := r.IntN(10)
	if depth > 5 {
		k = r.IntN(6)
	}
	switch k {
	case 0:
		b.WriteString([]string{"true", "false", "null"}[r.IntN(3)])
	case 1, 2:
		genNumber(r, b)
	case 3, 4, 5:
		genString(r, b)
	case 6, 7:
		b.WriteByte('[')
		n := r.IntN(6)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			genValue(r, b, depth+1)
		}
		genSpace(r, b)
		b.WriteByte(']')
	default:
		b.WriteByte('{')
		n := r.IntN(8)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			genSpace(r, b)
			if r.IntN(4) == 0 {
				b.WriteString(`"type"`) // duplicate keys
			} else {
				genString(r, b)
			}
			genSpace(r, b)
			b.WriteByte(':')
			genValue(r, b, depth+1)
		}
		genSpace(r, b)
		b.WriteByte('}')
	}
	genSpace(r, b)
}

func genSpace(r *rand.Rand, b *bytes.Buffer) {
	for r.IntN(4) == 0 {
		b.WriteByte(" \t\r\n"[r.IntN(4)])
	}
}

func genNumber(r *rand.Rand, b *bytes.Buffer) {
	if r.IntN(3) == 0 {
		b.WriteByte('-')
	}
	if r.IntN(4) == 0 {
		b.WriteByte('0')
	} else {
		b.WriteString(strconv.FormatUint(r.Uint64()>>r.IntN(64)+1, 10))
	}
	if r.IntN(2) == 0 {
		b.WriteByte('.')
		b.WriteString(strconv.Itoa(r.IntN(100000)))
	}
	if r.IntN(3) == 0 {
		b.WriteString([]string{"e", "E", "e+", "e-", "E+", "E-"}[r.IntN(6)])
		b.WriteString(strconv.Itoa(r.IntN(400)))
	}
}

var (
	genWords   = []string{"type", "Property", "value", "unitCode", "observedAt", "id", "urn:ngsi-ld:X:1", "España", "Москва", "😀", "", "a b", strings.Repeat("long", 12)}
	genEscapes = []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u0000`, `\u00e9`, `\u00E9`, `\u20ac`, `\ud83d\ude00`, `\ud800`, `\udc00`, `\udbff\udfff`, `\ud83d\ud83d\ude00`, `\ude00\ud83d`, `\ud83dA`, `\ud83d\u0041`}
	genRaw     = []string{"\xff", "\xc3", "\xe2\x82", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\x7f", "\xef\xbf\xbd"}
)

func genString(r *rand.Rand, b *bytes.Buffer) {
	b.WriteByte('"')
	for n := r.IntN(5); n > 0; n-- {
		switch r.IntN(6) {
		case 0, 1, 2:
			b.WriteString(genWords[r.IntN(len(genWords))])
		case 3, 4:
			b.WriteString(genEscapes[r.IntN(len(genEscapes))])
		default:
			b.WriteString(genRaw[r.IntN(len(genRaw))])
		}
	}
	b.WriteByte('"')
}
