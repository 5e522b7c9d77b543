package broker

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseSubscriptionFixtures(t *testing.T) {
	files, err := filepath.Glob("testdata/subscriptions/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(f, ".good.json") {
				v, err := DecodeJSON(data)
				if err != nil {
					t.Fatal(err)
				}
				s, err := ParseSubscription(v, SubscriptionParseOptions{Now: now})
				if err != nil {
					t.Fatalf("good subscription refused: %v", err)
				}
				// The stored form reads back to the same subscription.
				s.Tenant = "t1"
				enc, err := s.encode()
				if err != nil {
					t.Fatal(err)
				}
				back, err := decodeSubscription(enc)
				if err != nil {
					t.Fatalf("stored form does not read back: %v\n%s", err, enc)
				}
				if back.ID != s.ID || back.Tenant != "t1" || back.Throttling != s.Throttling ||
					back.TimeInterval != s.TimeInterval || back.Notification.Endpoint.URI.String() != s.Notification.Endpoint.URI.String() ||
					strings.Join(back.Triggers, ",") != strings.Join(s.Triggers, ",") || back.IsActive != s.IsActive {
					t.Fatalf("round trip changed the subscription:\n%+v\n%+v", s, back)
				}
				return
			}
			var fx struct {
				Want string          `json:"want"`
				Body json.RawMessage `json:"body"`
			}
			if err := json.Unmarshal(data, &fx); err != nil {
				t.Fatal(err)
			}
			v, err := DecodeJSON(fx.Body)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ParseSubscription(v, SubscriptionParseOptions{Now: now})
			if err == nil {
				t.Fatalf("bad subscription accepted, want an error naming %q", fx.Want)
			}
			if !errors.Is(err, ErrBadRequestData) {
				t.Fatalf("error %v is not ErrBadRequestData", err)
			}
			if !strings.Contains(Detail(err), fx.Want) {
				t.Fatalf("error %q does not say %q", Detail(err), fx.Want)
			}
		})
	}
}

func TestParseSubscriptionMembers(t *testing.T) {
	data, err := os.ReadFile("testdata/subscriptions/full.good.json")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := DecodeJSON(data)
	s, err := ParseSubscription(v, SubscriptionParseOptions{Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ep := s.Notification.Endpoint
	checks := []struct {
		name string
		ok   bool
	}{
		{"id", s.ID == "urn:ngsi-ld:Subscription:full"},
		{"entities", len(s.Entities) == 2 && s.Entities[0].ID == "urn:ngsi-ld:Vehicle:A1" && s.Entities[1].IDPattern != nil},
		{"watchedAttributes", strings.Join(s.WatchedAttributes, ",") == "speed,location"},
		{"triggers", strings.Join(s.Triggers, ",") == "entityCreated,attributeUpdated,entityDeleted"},
		{"q", s.Q != nil}, {"geoQ", s.Geo != nil}, {"scopeQ", s.Scope != nil},
		{"lang", s.Lang == "it,en"}, {"isActive", !s.IsActive},
		{"status", s.Status(time.Now()) == StatusPaused},
		{"expired", s.Status(time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)) == StatusExpired},
		{"throttling", s.Throttling == 5*time.Second},
		{"jsonldContext", strings.HasPrefix(s.JSONLDContext, "https://uri.etsi.org/")},
		{"attributes", len(s.Notification.Attributes) == 1},
		{"format", s.Notification.Format == Simplified},
		{"showChanges", s.Notification.ShowChanges}, {"sysAttrs", s.Notification.SysAttrs},
		{"uri", ep.Scheme() == "https" && ep.URI.Host == "hooks.example.org"},
		{"accept", ep.Accept == "application/ld+json"},
		{"timeout", ep.Timeout == 1500*time.Millisecond}, {"cooldown", ep.Cooldown == 2*time.Second},
		{"receiverInfo", len(ep.ReceiverInfo) == 1 && ep.ReceiverInfo[0].Key == "Authorization"},
		{"notifierInfo", len(ep.NotifierInfo) == 1 && ep.NotifierInfo[0].Value == "1"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s not parsed as expected: %+v", c.name, s)
		}
	}
}

func TestParseSubscriptionUnsupported(t *testing.T) {
	v, _ := DecodeJSON([]byte(`{"type":"Subscription","entities":[{"type":"V"}],"csf":"x","notification":{"endpoint":{"uri":"http://h/n"}}}`))
	_, err := ParseSubscription(v, SubscriptionParseOptions{})
	if !errors.Is(err, ErrOperationNotSupported) {
		t.Fatalf("csf: %v, want ErrOperationNotSupported", err)
	}
}

func TestHostAllowed(t *testing.T) {
	list := []string{"hooks.example.org", "*.city.example", "10.1.0.0/16", "::1"}
	for _, c := range []struct {
		host string
		list []string
		want bool
	}{
		{"anything.example", nil, true},
		{"hooks.example.org", list, true},
		{"HOOKS.example.org", list, true},
		{"evil.example.org", list, false},
		{"a.city.example", list, true},
		{"city.example", list, false},
		{"xcity.example", list, false},
		{"10.1.2.3", list, true},
		{"10.2.0.1", list, false},
		{"[::1]", list, true},
		{"169.254.169.254", list, false},
	} {
		t.Run(c.host, func(t *testing.T) {
			if got := HostAllowed(c.host, c.list); got != c.want {
				t.Fatalf("HostAllowed(%q) = %v, want %v", c.host, got, c.want)
			}
		})
	}
	v, _ := DecodeJSON([]byte(`{"type":"Subscription","entities":[{"type":"V"}],"notification":{"endpoint":{"uri":"http://169.254.169.254/latest"}}}`))
	_, err := ParseSubscription(v, SubscriptionParseOptions{AllowedHosts: list})
	if err == nil || !strings.Contains(Detail(err), `host "169.254.169.254" is not in the allowed notification hosts`) {
		t.Fatalf("a host off the list: %v", err)
	}
}

func TestMergeSubscriptionPatch(t *testing.T) {
	doc := map[string]any{"type": "Subscription", "q": "a>1", "throttling": 5,
		"notification": map[string]any{"format": "keyValues", "endpoint": map[string]any{"uri": "http://h/n", "accept": "application/json"}}}
	patch := map[string]any{"q": nil, "isActive": false,
		"notification": map[string]any{"endpoint": map[string]any{"uri": "http://h2/n"}}}
	got := MergeSubscriptionPatch(doc, patch)
	if _, ok := got["q"]; ok {
		t.Fatal("null did not remove q")
	}
	if got["isActive"] != false || got["throttling"] != 5 {
		t.Fatalf("members: %v", got)
	}
	n := got["notification"].(map[string]any)
	ep := n["endpoint"].(map[string]any)
	if _, kept := n["format"]; kept || ep["uri"] != "http://h2/n" || ep["accept"] != nil {
		t.Fatalf("notification not replaced whole: %v", n)
	}
	if doc["q"] != "a>1" || doc["notification"].(map[string]any)["endpoint"].(map[string]any)["uri"] != "http://h/n" {
		t.Fatal("the stored members were modified")
	}
}

func FuzzParseSubscription(f *testing.F) {
	files, _ := filepath.Glob("testdata/subscriptions/*.json")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		if strings.HasSuffix(file, ".bad.json") {
			var fx struct {
				Body json.RawMessage `json:"body"`
			}
			if json.Unmarshal(data, &fx) == nil {
				data = fx.Body
			}
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeJSON(data)
		if err != nil {
			return
		}
		s, err := ParseSubscription(v, SubscriptionParseOptions{Now: time.Now(), AllowedHosts: []string{"h", "*.example.org"}})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (!errors.Is(err, ErrBadRequestData) && !errors.Is(err, ErrOperationNotSupported)) {
				t.Fatalf("error of no known kind: %v", err)
			}
			return
		}
		if s.Notification.Endpoint.URI == nil || s.ID == "" || len(s.Triggers) == 0 {
			t.Fatalf("accepted subscription is incomplete: %+v", s)
		}
		// What was accepted is stored and reads back.
		enc, err := s.encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeSubscription(enc); err != nil {
			t.Fatalf("accepted subscription does not read back: %v\n%s", err, enc)
		}
	})
}
