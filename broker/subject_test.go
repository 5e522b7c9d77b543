package broker

import (
	"errors"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

func TestEncodeToken(t *testing.T) {
	tests := []struct{ in, want string }{
		{"urn:ngsi-ld:Vehicle:V1", "urn:ngsi-ld:Vehicle:V1"},
		{"AirQualityObserved", "AirQualityObserved"},
		{"a_b-c:9", "a_b-c:9"},
		{"", "%"},
		{"a.b", "a%2Eb"},
		{"*", "%2A"},
		{">", "%3E"},
		{"a b", "a%20b"},
		{"%", "%25"},
		{"@", "%40"},
		{"a/b+c#d", "a%2Fb%2Bc%23d"},
		{"ü", "%C3%BC"},
		{"\x00\xff", "%00%FF"},
		{"https://example.org/ns#Room", "https:%2F%2Fexample%2Eorg%2Fns%23Room"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got := EncodeToken(tc.in)
			if got != tc.want {
				t.Fatalf("EncodeToken(%q) = %q, want %q", tc.in, got, tc.want)
			}
			back, err := DecodeToken(got)
			if err != nil || back != tc.in {
				t.Fatalf("DecodeToken(%q) = %q, %v", got, back, err)
			}
		})
	}
}

func TestDecodeTokenRejects(t *testing.T) {
	for _, tok := range []string{
		"",      // no token is empty
		"a%2e",  // lower-case hex
		"%41",   // an escaped safe byte
		"a%",    // stray '%'
		"a%4",   // short escape
		"%G0",   // not hex
		"%%",    // not "%" alone
		"a.b",   // unescaped unsafe byte
		"a b",   // space
		"@",     // the default tenant token is not an encoded name
		"ü",     // raw non-ASCII
		"%2E%2", // truncated at the end
	} {
		t.Run(tok, func(t *testing.T) {
			if s, err := DecodeToken(tok); !errors.Is(err, ErrBadToken) {
				t.Fatalf("DecodeToken(%q) = %q, %v; want ErrBadToken", tok, s, err)
			}
		})
	}
}

func TestSubject(t *testing.T) {
	tests := []struct {
		tenant, typ, id, want string
	}{
		{"", "AirQualityObserved", "urn:ngsi-ld:AirQualityObserved:MN-1", "piazza.@.AirQualityObserved.urn:ngsi-ld:AirQualityObserved:MN-1"},
		{"mantova", "Room", "urn:a.b", "piazza.mantova.Room.urn:a%2Eb"},
		{"a.b", "https://x.org/T", "urn:x:*", "piazza.a%2Eb.https:%2F%2Fx%2Eorg%2FT.urn:x:%2A"},
		{"@", "T", "urn:x:y", "piazza.%40.T.urn:x:y"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			s := Subject(tc.tenant, tc.typ, tc.id)
			if s != tc.want {
				t.Fatalf("Subject = %q, want %q", s, tc.want)
			}
			if !server.IsValidLiteralSubject(s) {
				t.Fatalf("%q is not a valid NATS subject", s)
			}
			tn, ty, id, err := ParseSubject(s)
			if err != nil || tn != tc.tenant || ty != tc.typ || id != tc.id {
				t.Fatalf("ParseSubject(%q) = %q %q %q %v", s, tn, ty, id, err)
			}
		})
	}
	for _, bad := range []string{"piazza.@.T", "other.@.T.x", "piazza.@.T.x.y", "piazza.@.T.a%2e", "piazza.%.T.x:y"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if _, _, _, err := ParseSubject(bad); !errors.Is(err, ErrBadToken) {
				t.Fatalf("ParseSubject(%q) accepted", bad)
			}
		})
	}
	if f := idSubjectFilter("mantova", "urn:a.b"); f != "piazza.mantova.*.urn:a%2Eb" || !server.IsValidSubject(f) {
		t.Fatalf("idSubjectFilter = %q", f)
	}
}

// checkToken checks that tok is safe as a NATS subject token and as an MQTT
// topic level: printable ASCII, none of . * > / + # or space.
func checkToken(t *testing.T, s, tok string) {
	t.Helper()
	if tok == "" {
		t.Fatalf("EncodeToken(%q) is empty", s)
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(".*>/+#", c) >= 0 {
			t.Fatalf("EncodeToken(%q) = %q holds %q", s, tok, c)
		}
	}
}

func FuzzSubjectToken(f *testing.F) {
	for _, s := range []string{"", "urn:ngsi-ld:Vehicle:V1", "a.b", "%", "%25", "%2e", "@", "ü", "a b*c>d/e+f#g", "\x00", "\xff\xfe", "%%", "%4", "%41"} {
		f.Add(s, "T", "urn:x:y")
	}
	f.Fuzz(func(t *testing.T, s, typ, id string) {
		tok := EncodeToken(s)
		checkToken(t, s, tok)
		back, err := DecodeToken(tok)
		if err != nil || back != s {
			t.Fatalf("DecodeToken(EncodeToken(%q)) = %q, %v", s, back, err)
		}
		// DecodeToken accepts canonical tokens only: whatever it accepts,
		// EncodeToken gives back byte for byte.
		if d, err := DecodeToken(s); err == nil {
			if again := EncodeToken(d); again != s {
				t.Fatalf("DecodeToken(%q) = %q, which encodes as %q", s, d, again)
			}
		} else if !errors.Is(err, ErrBadToken) {
			t.Fatalf("DecodeToken(%q): %v", s, err)
		}
		subj := Subject(s, typ, id)
		if !server.IsValidLiteralSubject(subj) {
			t.Fatalf("Subject(%q, %q, %q) = %q is not a valid literal NATS subject", s, typ, id, subj)
		}
		tn, ty, i, err := ParseSubject(subj)
		if err != nil || tn != s || ty != typ || i != id {
			t.Fatalf("ParseSubject(%q) = %q %q %q %v", subj, tn, ty, i, err)
		}
		// Every subject has one spelling: re-encoding what ParseSubject
		// accepts gives the same subject.
		if tn, ty, i, err := ParseSubject(SubjectPrefix + "." + s + "." + typ + "." + id); err == nil {
			if again := Subject(tn, ty, i); again != SubjectPrefix+"."+s+"."+typ+"."+id {
				t.Fatalf("ParseSubject accepted a non-canonical subject: %q reads as %q %q %q, which is %q",
					SubjectPrefix+"."+s+"."+typ+"."+id, tn, ty, i, again)
			}
		}
	})
}
