package broker

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/broker/internal/jsonld"
)

// mapNames is a Names for tests: terms in the map expand to their value,
// others stay as they are.
type mapNames map[string]string

func (m mapNames) Canon(t string) string {
	if c, ok := m[t]; ok {
		return c
	}
	return t
}

func (m mapNames) Term(n string) string {
	for t, c := range m {
		if c == n {
			return t
		}
	}
	return n
}

// loadEntity reads a stored-form entity from testdata (system times kept).
func loadEntity(t testing.TB, path string) *Entity {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := DecodeJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseEntity(v, ParseOptions{stored: true})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestQMatch(t *testing.T) {
	e := loadEntity(t, "testdata/q/vehicle.json")
	names := mapNames{"velocity": "speed", "Sedan": "https://ex.org/Sedan", "precision": "accuracy"}
	cases := []struct {
		q    string
		want bool
	}{
		// existence and absence
		{"speed", true},
		{"nothing", false},
		{"!nothing", true},
		{"!speed", false},
		{"speed.accuracy", true},
		{"speed.nothing", false},
		{"!speed.nothing", true},
		{"speed.accuracy.source", true},
		{"address[city]", true},
		{"address[country]", false},
		{"!address[country]", true},
		{"velocity", true}, // expanded with names
		{"velocity.precision>0.4", true},
		// numbers
		{"speed==55.5", true},
		{"speed==55.50", true},
		{"speed==5.55e1", true},
		{"speed!=55.5", false},
		{"speed!=10", true},
		{"speed>55", true},
		{"speed>55.5", false},
		{"speed>=55.5", true},
		{"speed<56", true},
		{"speed<55.5", false},
		{"speed<=55.5", true},
		{"speed>-1", true},
		{"speed==50..60", true},
		{"speed==56..60", false},
		{"speed!=56..60", true},
		{"speed!=50..60", false},
		{"speed==1,2,55.5", true},
		{"speed==[1,2,55.5]", true},
		{"speed==[1,2]", false},
		{"speed!=[1,2]", true},
		{"speed!=1,55.5", false},
		// different kinds: no match, except != (unequal)
		{`speed=="55.5"`, false},
		{`speed>"5"`, false},
		{`speed!="55.5"`, true},
		{`brandName>5`, false},
		{`brandName==true`, false},
		// strings
		{`brandName=="Mercedes"`, true},
		{`brandName!="Mercedes"`, false},
		{`brandName!="Volvo"`, true},
		{`brandName=="Volvo","Mercedes"`, true},
		{`brandName==["Volvo","Mercedes"]`, true},
		{`brandName>"Audi"`, true},
		{`brandName<"Audi"`, false},
		{`brandName=="A".."N"`, true},
		{`brandName=="N".."Z"`, false},
		{`brandName==Mercedes`, true}, // an unquoted term
		{`description=="a \"quoted\" word; and | bars"`, true},
		{`Straße=="ü"`, true},
		{`Straße=="\u00fc"`, true},
		// booleans
		{"electric==false", true},
		{"electric==true", false},
		{"electric!=true", true},
		// arrays: any element
		{`tags=="red"`, true},
		{`tags=="green"`, false},
		{`tags!="green"`, true},
		{`tags!="red"`, false},
		{`tags=="green","blue"`, true},
		{`tags~="^urg"`, true},
		{`tags!~="^urg"`, false},
		{`tags!~="^zzz"`, true},
		// regex
		{`brandName~="^Merc"`, true},
		{`brandName~="(?i)^merc"`, true},
		{`brandName~="^merc"`, false},
		{`brandName!~="^Merc"`, false},
		{`brandName!~="^Volvo"`, true},
		{`brandName~=^Mer.+s$`, true},
		{`brandName~=(Merc|Volvo)`, true},
		{`brandName~=Merc|speed>100`, true},
		{`brandName~=Volvo|speed>100`, false},
		{`brandName~=[)|;]`, false},
		{`speed~="5"`, false}, // not a string
		{`speed!~="5"`, false},
		// compound values
		{`address[city]=="Berlin"`, true},
		{`address[city]=="Paris"`, false},
		{`address[geo.zip]=="10115"`, true},
		{`address[geo][zip]=="10115"`, true},
		{`address[geo.floors]==2`, true},
		{`address[geo.floors]>2`, true},
		{`address[geo.floors]>3`, false},
		{`address[geo.floors.0]==1`, true},
		{`address[geo.floors.0]==2`, false},
		{`address[rooms.n]=="b"`, true},
		{`address[rooms.n]=="c"`, false},
		{`address[city.x]=="Berlin"`, false},
		{`raw[value]=="Overstay 60 minutes"`, true},
		{`raw[id]~="^85"`, true},
		{`location[type]=="Point"`, true},
		// relationships
		{`isParked==urn:ngsi-ld:OffStreetParking:Downtown1`, true},
		{`isParked=="urn:ngsi-ld:OffStreetParking:Downtown1"`, true},
		{`isParked!=urn:ngsi-ld:OffStreetParking:Downtown1`, false},
		{`isParked!=urn:ngsi-ld:OffStreetParking:Other`, true},
		{`isParked>"urn:a"`, false}, // only == and != on relationships
		{`isParked~="Downtown"`, false},
		{`isParked.observedAt>=2024-05-01T00:00:00Z`, true},
		{`owners==urn:ngsi-ld:Person:2`, true},
		{`owners==urn:ngsi-ld:Person:3`, false},
		{`owners==urn:ngsi-ld:Person:3,urn:ngsi-ld:Person:1`, true},
		{`owners!=urn:ngsi-ld:Person:1`, false},
		{`route==urn:ngsi-ld:Road:2`, true},
		{`route==urn:ngsi-ld:Road:3`, false},
		// language properties
		{`name=="red car"`, true},
		{`name=="voiture rouge"`, true},
		{`name=="Auto"`, true},
		{`name=="blue car"`, false},
		{`name[en]=="red car"`, true},
		{`name[fr]=="red car"`, false},
		{`name[de]=="Auto"`, true},
		{`name[*]=="voiture rouge"`, true},
		{`name[en]!="red car"`, false},
		{`name[en]!="black car"`, true},
		{`name[es]`, false},
		{`name[en]`, true},
		{`name[en]~="^red"`, true},
		// vocab properties
		{`category==Sedan`, true},
		{`category=="Sedan"`, true},
		{`category==https://ex.org/Sedan`, true},
		{`category==Coupe`, false},
		{`category!=Sedan`, false},
		{`category!=Coupe`, true},
		// list properties
		{`readings==2`, true},
		{`readings>2`, true},
		{`readings>3`, false},
		// multi-instance: any instance
		{`temperature==20`, true},
		{`temperature==30`, true},
		{`temperature>25`, true},
		{`temperature>35`, false},
		{`temperature!=20`, true}, // the other instance is unequal
		{`temperature.datasetId=="urn:ds:2"`, true},
		{`temperature.datasetId==urn:ds:3`, false},
		{`temperature.observedAt>=2024-05-01`, true},
		// attribute members
		{`speed.observedAt>=2024-05-01T00:00:00Z`, true},
		{`speed.observedAt>=2024-05-01T10:00:00.001Z`, false},
		{`speed.observedAt==2024-05-01T12:00:00+02:00`, true},
		{`speed.observedAt=="2024-05-01T10:00:00.000Z"`, true},
		{`speed.observedAt==2024-05-01T00:00:00Z..2024-05-02T00:00:00Z`, true},
		{`speed.observedAt`, true},
		{`brandName.observedAt`, false},
		{`!brandName.observedAt`, true},
		{`speed.unitCode=="KMH"`, true},
		{`speed.unitCode==KMH`, true},
		{`speed.createdAt<2024-02-01T00:00:00Z`, true},
		{`speed.modifiedAt>2024-05-01T10:00:00Z`, true},
		{`speed.modifiedAt>2024-05-01T10:00:02Z`, false},
		// entity system times
		{`createdAt==2024-01-01T00:00:00Z`, true},
		{`createdAt<2024-01-01T00:00:00Z`, false},
		{`modifiedAt>=2024-06-01`, true},
		{`modifiedAt==2024-01-01..2024-12-31`, true},
		{`modifiedAt!=2024-01-01..2024-12-31`, false},
		// dates and times inside values
		{`dateOfLastService>2024-03-15T09:00:00Z`, true},
		{`dateOfLastService<2024-03-15T09:00:00Z`, false},
		{`dateOfLastService>"2024-03-15T10:30:00+02:00"`, true}, // same instant minus a minute
		{`dateOfLastService=="2024-03-15T11:30:00+02:00"`, true},
		{`dateOfLastService>=2024-03-15`, true},
		{`openingTime<09:00:00`, true},
		{`openingTime>09:00:00`, false},
		{`openingTime==08:30:00`, true},
		{`serviceDay==2024-03-15`, true},
		{`serviceDay<2024-03-16`, true},
		{`brandName<2024-03-16`, false},             // not a date
		{`dateObserved>2018-01-01T00:00:00Z`, true}, // a JSON-LD value object
		{`dateObserved<2018-01-01T00:00:00Z`, false},
		{`dateObserved=="2018-08-07T12:00:00Z"`, true},
		// logic
		{`speed>50;brandName=="Mercedes"`, true},
		{`speed>60;brandName=="Mercedes"`, false},
		{`speed>60|brandName=="Mercedes"`, true},
		{`speed>60|brandName=="Volvo"`, false},
		{`speed>60;brandName=="Volvo"|seats==5`, true},    // AND binds tighter
		{`seats==5|speed>60;brandName=="Volvo"`, true},    // AND binds tighter
		{`speed>60;(brandName=="Volvo"|seats==5)`, false}, // parentheses
		{`((speed>50|seats>3000);brandName=="Mercedes")`, true},
		{`(speed>=20;speed<=25)|seats<=10`, true},
		{`(((((speed))))) ; !nothing`, true},
		{` speed > 50 ; brandName == "Mercedes" `, true},
	}
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			x, err := ParseQ(c.q, names)
			if err != nil {
				t.Fatalf("ParseQ: %v", err)
			}
			if got := x.Match(e); got != c.want {
				t.Errorf("Match = %v, want %v", got, c.want)
			}
		})
	}
}

func TestQErrors(t *testing.T) {
	cases := []struct {
		q      string
		detail string // substring of the detail, with the position
		kind   error
	}{
		{"", "empty", ErrBadRequestData},
		{"   ", "empty", ErrBadRequestData},
		{"speed>", "character 7: expected a value, found the end", ErrBadRequestData},
		{"speed=5", "character 6: '=' is not an operator", ErrBadRequestData},
		{"speed===5", `character 8: "=5" is not a value`, ErrBadRequestData},
		{"speed>>5", "character 7: expected a number", ErrBadRequestData},
		{"speed 5", "character 7: expected an operator", ErrBadRequestData},
		{"(speed>5", "character 1: '(' is never closed", ErrBadRequestData},
		{"speed>5)", "character 8: ')' without a matching '('", ErrBadRequestData},
		{"()", "character 2: expected a query term", ErrBadRequestData},
		{"speed>5;", "character 9: expected a query term, found the end", ErrBadRequestData},
		{";speed>5", "character 1: expected a query term", ErrBadRequestData},
		{"speed>5||a", "character 9: expected a query term", ErrBadRequestData},
		{"a==1 b", "character 6: expected ';', '|', ')'", ErrBadRequestData},
		{`brandName=="Merc`, "character 12: the string is never closed", ErrBadRequestData},
		{`brandName=="a\q"`, "invalid string", ErrBadRequestData},
		{"brandName==\"a\tb\"", "invalid string", ErrBadRequestData},
		{`brandName=='x'`, "quoted with \"", ErrBadRequestData},
		{`brandName==a b`, "character 14: expected ';'", ErrBadRequestData},
		{`brandName>Mercedes`, "character 11: expected a number, a quoted string or a date/time", ErrBadRequestData},
		{`speed>1,2`, "character 8: a list of values needs == or !=", ErrBadRequestData},
		{`speed>1..2`, "character 8: a range (low..high) needs == or !=", ErrBadRequestData},
		{`speed>true`, "character 7: > compares numbers", ErrBadRequestData},
		{`speed==1..`, "character 11: expected a value, found the end", ErrBadRequestData},
		{`speed==1.."z"`, "same kind", ErrBadRequestData},
		{`speed==true..2`, "low end of a range", ErrBadRequestData},
		{`speed==[1,2`, "'[' is never closed", ErrBadRequestData},
		{`speed==[1;2]`, "expected ',' or ']'", ErrBadRequestData},
		{`speed==01`, "character 8: \"01\" is not a valid number", ErrBadRequestData},
		{`speed==-x`, "not a valid number", ErrBadRequestData},
		{`speed==1e999`, "out of range", ErrBadRequestData},
		{`x==2024-13-45T00:00:00Z`, "not a valid DateTime", ErrBadRequestData},
		{`x>25:99:00`, "not a valid DateTime, Date or Time", ErrBadRequestData},
		{`!speed>5`, "character 1: '!' (absence of an attribute) takes no operator", ErrBadRequestData},
		{`speed..x>5`, "character 7: empty name", ErrBadRequestData},
		{`.speed`, "character 1: empty name", ErrBadRequestData},
		{`==5`, "character 1: expected an attribute name", ErrBadRequestData},
		{`1speed>5`, "must start with a letter", ErrBadRequestData},
		{`speed[`, "'[' is never closed", ErrBadRequestData},
		{`speed[]==1`, "empty compound path", ErrBadRequestData},
		{`speed[a..b]==1`, "empty key", ErrBadRequestData},
		{`speed.observedAt.x>1`, "observedAt has no sub-attributes", ErrBadRequestData},
		{`speed.observedAt[x]>1`, "no compound value", ErrBadRequestData},
		{`brandName~=`, "expected a regular expression", ErrBadRequestData},
		{`brandName~="("`, "invalid regular expression: missing closing )", ErrBadRequestData},
		{`brandName~=a(?=b)`, "invalid regular expression", ErrBadRequestData},
		{`brandName~="` + strings.Repeat("a", MaxQRegex+1) + `"`, "longer than 1024", ErrBadRequestData},
		{`brandName~="x{1001}"`, "invalid regular expression", ErrBadRequestData},
		{`brandName~="` + strings.Repeat("[a-z]{100}", 30) + `"`, "too complex (3002 instructions, at most 2000)", ErrBadRequestData},
		{`sensor{humidity`, "character 16: expected '}' to close", ErrBadRequestData},
		{`sensor{humidity}}`, "character 17: expected an operator", ErrBadRequestData},
		{`sensor.x{humidity}`, "character 9: only a relationship name", ErrBadRequestData},
		{`sensor[k]{humidity}`, "only a relationship name", ErrBadRequestData},
		{`sensor{1Device:humidity}`, `"1Device" is not an entity type`, ErrBadRequestData},
		{`sensor{,:humidity}`, `"" is not an entity type`, ErrBadRequestData},
		{`sensor{}`, "character 8: expected an attribute name", ErrBadRequestData},
		{strings.Repeat("a{", MaxQLinks+1) + "b" + strings.Repeat("}", MaxQLinks+1), "more than 8 relationships", ErrBadRequestData},
		{strings.Repeat("(", MaxQDepth+1) + "a" + strings.Repeat(")", MaxQDepth+1), "nest deeper than 64", ErrBadRequestData},
		{"a==" + strings.Repeat("1,", MaxQList) + "1", "more than 1000 values", ErrBadRequestData},
		{strings.Repeat("a;", MaxQLength/2+1), "longer than 8192 bytes", ErrBadRequestData},
		{"a==\xff", "UTF-8", ErrBadRequestData},
		{"Straße>ü", "character 8: expected a number", ErrBadRequestData}, // positions count characters
	}
	for _, c := range cases {
		name := c.q
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			x, err := ParseQ(c.q, nil)
			if err == nil {
				t.Fatalf("ParseQ accepted it: %v", x)
			}
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("error %T %v is not an *Error", err, err)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("kind %v, want %v", be.Kind, c.kind)
			}
			if !strings.Contains(be.Detail, c.detail) {
				t.Errorf("detail %q does not contain %q", be.Detail, c.detail)
			}
		})
	}
}

func TestCompileRegexp(t *testing.T) {
	re, err := CompileRegexp("idPattern", "^urn:ngsi-ld:Vehicle:[0-9]+$")
	if err != nil || !re.MatchString("urn:ngsi-ld:Vehicle:12") {
		t.Fatalf("%v %v", re, err)
	}
	for pat, detail := range map[string]string{
		"":                            "idPattern: empty",
		"(":                           "idPattern: invalid regular expression: missing closing )",
		`(\w+)\1`:                     "invalid escape sequence",
		strings.Repeat("a", 1025):     "longer than 1024 bytes",
		strings.Repeat(`\w{100}`, 25): "too complex",
		strings.Repeat("x", 1024):     "", // a literal as long as allowed
		`\x41\p{Greek}`:               "",
		"\xff\xfe":                    "not valid UTF-8",
	} {
		_, err := CompileRegexp("idPattern", pat)
		if detail == "" {
			if err != nil {
				t.Errorf("%q: %v", pat, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrBadRequestData) || !strings.Contains(Detail(err), detail) {
			t.Errorf("%q: error %v, want %q", pat, err, detail)
		}
	}
	// A pathological pattern for backtracking engines stays linear.
	re, err = CompileRegexp("q", "(a*)*b")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if re.MatchString(strings.Repeat("a", 100000)) {
		t.Error("matched")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestQAttrsAndConjuncts(t *testing.T) {
	x, err := ParseQ(`p1>10;p2=="x";(p3|p4);p1<20;createdAt>2024-01-01;p5.observedAt<2024-02-01T00:00:00Z;p6[a.b]==1..5;p7~="^a"`, mapNames{"p5": "P5"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(x.Attrs(), ","), "P5,p1,p2,p3,p4,p6,p7"; got != want {
		t.Errorf("Attrs = %s, want %s", got, want)
	}
	cs := x.Conjuncts()
	if len(cs) != 7 {
		t.Fatalf("%d conjuncts, want 7: %+v", len(cs), cs)
	}
	if c := cs[0]; c.Attr != "p1" || c.Op != ">" || len(c.Values) != 1 || c.Values[0] != 10.0 || strings.Join(c.Path, ".") != "p1" {
		t.Errorf("conjunct 0 = %+v", c)
	}
	if c := cs[1]; c.Op != "==" || c.Values[0] != "x" || c.Vocab[0] != "x" {
		t.Errorf("conjunct 1 = %+v", c)
	}
	if c := cs[3]; c.Attr != "" || c.Meta != "createdAt" || c.Op != ">" {
		t.Errorf("conjunct 3 = %+v", c)
	} else if ts, ok := c.Values[0].(time.Time); !ok || !ts.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("conjunct 3 value = %#v", c.Values[0])
	}
	if c := cs[4]; c.Attr != "P5" || c.Meta != "observedAt" || strings.Join(c.Path, ".") != "P5.observedAt" {
		t.Errorf("conjunct 4 = %+v", c)
	}
	if c := cs[5]; !c.Range || strings.Join(c.Keys, ".") != "a.b" || strings.Join(c.Path, ".") != "p6.a.b" || c.Values[1] != 5.0 {
		t.Errorf("conjunct 5 = %+v", c)
	}
	if c := cs[6]; c.Op != "~=" || c.Pattern != "^a" {
		t.Errorf("conjunct 6 = %+v", c)
	}
	or, _ := ParseQ("a|b", nil)
	if cs := or.Conjuncts(); cs != nil {
		t.Errorf("conjuncts of an OR = %+v", cs)
	}
	one, _ := ParseQ("!a", nil)
	if cs := one.Conjuncts(); len(cs) != 1 || cs[0].Op != "notExists" {
		t.Errorf("conjuncts of !a = %+v", cs)
	}
	var nilQ *QExpr
	if !nilQ.Match(&Entity{}) || nilQ.Conjuncts() != nil {
		t.Error("a nil QExpr must match everything and have no conjuncts")
	}
}

func TestQFullIRINames(t *testing.T) {
	e := &Entity{ID: "urn:x", Types: []string{"T"}, Attrs: map[string]Instances{
		"https://schema.org/speed": {{Type: Property, Value: mustNumber("12"), ObservedAt: "2024-01-01T00:00:00Z"}},
	}}
	for _, q := range []string{
		"https://schema.org/speed>10",
		"https://schema.org/speed.observedAt>=2024-01-01T00:00:00Z",
	} {
		x, err := ParseQ(q, nil)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !x.Match(e) {
			t.Errorf("%s does not match", q)
		}
	}
}

func TestQEntityWithoutTimes(t *testing.T) {
	e := &Entity{ID: "urn:x", Types: []string{"T"}, Attrs: map[string]Instances{"a": {{Type: Property, Value: "x"}}}}
	for q, want := range map[string]bool{
		"createdAt>2000-01-01": false, "!createdAt": true, "modifiedAt": false,
		"a.createdAt": false, "!a.modifiedAt": true, "a.unitCode": false,
	} {
		x, err := ParseQ(q, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := x.Match(e); got != want {
			t.Errorf("%s: Match = %v, want %v", q, got, want)
		}
	}
}

func TestQLinked(t *testing.T) {
	rel := func(ids ...string) Instances {
		if len(ids) == 1 {
			return Instances{{Type: Relationship, Value: ids[0]}}
		}
		l := make([]any, len(ids))
		for i, id := range ids {
			l[i] = id
		}
		return Instances{{Type: Relationship, Value: l}}
	}
	prop := func(v string) Instances { return Instances{{Type: Property, Value: mustNumber(v)}} }
	ents := map[string]*Entity{
		"urn:Device:345": {ID: "urn:Device:345", Types: []string{"Device"}, Attrs: map[string]Instances{
			"humidity": prop("40"), "site": rel("urn:Site:1")}},
		"urn:Device:346": {ID: "urn:Device:346", Types: []string{"Sensor"}, Attrs: map[string]Instances{
			"humidity": prop("70")}},
		"urn:Site:1": {ID: "urn:Site:1", Types: []string{"Site"}, Attrs: map[string]Instances{
			"name": prop(`"North"`)}},
		"urn:Station:1": {ID: "urn:Station:1", Types: []string{"WeatherStation"}, Attrs: map[string]Instances{
			"sensor": rel("urn:Device:345")}},
		"urn:Station:2": {ID: "urn:Station:2", Types: []string{"WeatherStation"}, Attrs: map[string]Instances{
			"sensor": rel("urn:Device:404", "urn:Device:346"),
			"parts":  {{Type: ListRelationship, Value: []any{map[string]any{"object": "urn:Device:345"}}}}}},
		"urn:Station:3": {ID: "urn:Station:3", Types: []string{"WeatherStation"}, Attrs: map[string]Instances{
			"sensor": prop("5")}}, // not a relationship
	}
	resolve := func(id string) *Entity { return ents[id] }
	cases := []struct {
		q    string
		want string // the stations that match, in order
	}{
		{"sensor{humidity}==40", "1"},
		{"sensor{humidity}>30", "1,2"},
		{"sensor{humidity}", "1,2"},
		{"!sensor{humidity}", "3"},
		{"sensor{Device:humidity}>30", "1"},
		{"sensor{Sensor,Device:humidity}>30", "1,2"},
		{"sensor{Other:humidity}>30", ""},
		{`sensor{site{name}}=="North"`, "1"},
		{`sensor{site{Site:name}}~="^No"`, "1"},
		{"sensor{site{Thing:name}}", ""},
		{"parts{humidity}==40", "2"},
		{"sensor{humidity}==70;parts{humidity}==40", "2"},
		{"sensor{createdAt}", ""},
	}
	for _, c := range cases {
		t.Run(c.q, func(t *testing.T) {
			x, err := ParseQ(c.q, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !x.Linked() {
				t.Error("Linked() = false")
			}
			var got []string
			for _, id := range []string{"urn:Station:1", "urn:Station:2", "urn:Station:3"} {
				if x.MatchLinked(ents[id], resolve) {
					got = append(got, id[len(id)-1:])
				}
			}
			if strings.Join(got, ",") != c.want {
				t.Errorf("matches %v, want %s", got, c.want)
			}
		})
	}
	x, _ := ParseQ("sensor{humidity}==40;a>1", nil)
	if x.Match(ents["urn:Station:1"]) {
		t.Error("Match without a resolver followed a link")
	}
	if cs := x.Conjuncts(); len(cs) != 2 || cs[0].Attr != "sensor" || cs[0].Op != "exists" {
		t.Errorf("Conjuncts = %+v", cs)
	}
	if got := strings.Join(x.Attrs(), ","); got != "a,sensor" {
		t.Errorf("Attrs = %s", got)
	}
	if y, _ := ParseQ("a>1", nil); y.Linked() {
		t.Error("a>1 is not linked")
	}
}

func mustNumber(s string) any {
	v, err := DecodeJSON([]byte(s))
	if err != nil {
		panic(err)
	}
	return v
}

// fuzzEntities are the entities a fuzzed expression is evaluated against.
func fuzzEntities(t testing.TB) []*Entity {
	return []*Entity{
		loadEntity(t, "testdata/q/vehicle.json"),
		{ID: "urn:empty", Types: []string{"T"}},
		{ID: "urn:odd", Types: []string{"T"}, Attrs: map[string]Instances{
			"a":    {{Type: Property, Value: []any{[]any{mustNumber("1")}, map[string]any{"b": nil}}}},
			"name": {{Type: LanguageProperty, Value: "not a map"}},
			"r":    {{Type: ListRelationship, Value: []any{"urn:a", 5}}},
			"v":    {{Type: VocabProperty, Value: []any{"x", 3}}},
		}},
	}
}

func FuzzParseQ(f *testing.F) {
	for _, s := range []string{
		`speed>50;brandName!="Mercedes"`, `((speed>50|rpm>3000);brandName=="Mercedes")`,
		`temperature.observedAt>=2017-12-24T12:00:00Z`, `address[city]=="Berlin"`,
		`sensor.rawdata[airquality.particulate]==40`, `a==1..5`, `a!=[1,"x",true]`, `a~="^x.*"`,
		`a!~=(b|c)`, `!a`, `name[en]=="red"`, `isParked==urn:ngsi-ld:X:1`, `t==08:30:00`,
		`createdAt>2024-01-01`, `a==1,2,3`, `https://schema.org/speed>1`, `sensor{Device:humidity}==40`,
		`isParked{name[en]}=="x"`, `!owners{a{b}}`,
	} {
		f.Add(s)
	}
	ents := fuzzEntities(f)
	f.Fuzz(func(t *testing.T, q string) {
		start := time.Now()
		x, err := ParseQ(q, nil)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("ParseQ took %v", d)
		}
		if err != nil {
			var be *Error
			if !errors.As(err, &be) || (be.Kind != ErrBadRequestData && be.Kind != ErrOperationNotSupported) {
				t.Fatalf("error %v is not a bad-request *Error", err)
			}
			if be.Detail == "" {
				t.Fatal("empty detail")
			}
			return
		}
		resolve := func(id string) *Entity {
			for _, e := range ents {
				if e.ID == id {
					return e
				}
			}
			return ents[0]
		}
		for _, e := range ents {
			x.Match(e)
			x.MatchLinked(e, resolve)
		}
		x.Conjuncts()
		x.Attrs()
	})
}

func BenchmarkParseQ(b *testing.B) {
	const q = `(temperature>=20;temperature<=25)|brandName=="Mercedes";address[city]=="Berlin";speed.observedAt>=2024-01-01T00:00:00Z`
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseQ(q, CanonicalNames); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQMatch(b *testing.B) {
	x, err := ParseQ(`p1>10;p2=="x"`, nil)
	if err != nil {
		b.Fatal(err)
	}
	e := &Entity{ID: "urn:e", Types: []string{"T"}, Attrs: map[string]Instances{}}
	for i, v := range []any{mustNumber("42"), "x", mustNumber("3.5"), "y", true, mustNumber("7")} {
		e.Attrs[[]string{"p1", "p2", "p3", "p4", "p5", "p6"}[i]] = Instances{{Type: Property, Value: v}}
	}
	if !x.Match(e) {
		b.Fatal("no match")
	}
	b.ReportAllocs()
	for b.Loop() {
		x.Match(e)
	}
}

func ExampleParseQ() {
	e := &Entity{ID: "urn:ngsi-ld:Vehicle:1", Types: []string{"Vehicle"}, Attrs: map[string]Instances{
		"speed":     {{Type: Property, Value: mustNumber("72"), ObservedAt: "2024-05-01T10:00:00Z"}},
		"brandName": {{Type: Property, Value: "Mercedes"}},
	}}
	q, err := ParseQ(`speed>50;brandName=="Mercedes"|speed.observedAt<2020-01-01T00:00:00Z`, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(q.Match(e), q.Attrs())

	_, err = ParseQ(`speed>>50`, nil)
	fmt.Println(Detail(err))
	// Output:
	// true [brandName speed]
	// q: character 7: expected a number, a quoted string or a date/time, found ">50"
}

// BenchmarkQScan evaluates a typical q over 10,000 entities (10 types, 6
// attributes each), as a query would without a value index: the figure per
// entity bounds what the planner must save.
func BenchmarkQScan(b *testing.B) {
	x, err := ParseQ(`p1>500;p2=="w3"`, nil)
	if err != nil {
		b.Fatal(err)
	}
	const n = 10000
	ents := make([]*Entity, n)
	for i := range ents {
		ents[i] = &Entity{ID: fmt.Sprintf("urn:e:%d", i), Types: []string{fmt.Sprintf("T%d", i%10)}, Attrs: map[string]Instances{
			"p1": {{Type: Property, Value: mustNumber(fmt.Sprint(i % 1000))}},
			"p2": {{Type: Property, Value: fmt.Sprintf("w%d", i%7)}},
			"p3": {{Type: Property, Value: true}},
			"p4": {{Type: Property, Value: "x"}},
			"p5": {{Type: Relationship, Value: "urn:x:1"}},
			"p6": {{Type: Property, Value: mustNumber("1.5")}},
		}}
	}
	b.ReportAllocs()
	matched := 0
	for b.Loop() {
		matched = 0
		for _, e := range ents {
			if x.Match(e) {
				matched++
			}
		}
	}
	if matched == 0 {
		b.Fatal("nothing matched")
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "entities/s")
}

// coreNames are the Names of a request with the core @context only, built
// as the API builds them.
type coreNames struct{}

func (coreNames) Canon(t string) string { c := jsonld.Core(); return c.Compact(c.Expand(t)) }
func (coreNames) Term(n string) string  { c := jsonld.Core(); return c.Compact(c.Expand(n)) }

func TestQCoreContext(t *testing.T) {
	e := loadEntity(t, "testdata/q/vehicle.json")
	for _, q := range []string{
		"speed>50",
		"https://uri.etsi.org/ngsi-ld/default-context/speed>50",
		"https://uri.etsi.org/ngsi-ld/default-context/speed.observedAt>=2024-05-01T00:00:00Z",
		"https://uri.etsi.org/ngsi-ld/default-context/speed.accuracy==0.5",
		`https://uri.etsi.org/ngsi-ld/default-context/address[city]=="Berlin"`,
		"isParked==urn:ngsi-ld:OffStreetParking:Downtown1",
	} {
		x, err := ParseQ(q, coreNames{})
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if !x.Match(e) {
			t.Errorf("%s does not match (attrs %v)", q, x.Attrs())
		}
	}
	ts, err := ParseTypeSelection("https://uri.etsi.org/ngsi-ld/default-context/Vehicle,Other", coreNames{})
	if err != nil {
		t.Fatal(err)
	}
	if !ts.Match(e.Types) || ts.AnyOf()[0] != "Vehicle" {
		t.Errorf("type selection: Match %v, AnyOf %v", ts.Match(e.Types), ts.AnyOf())
	}
}

// TestQComplements checks that == and != (and ~= and !~=) split the
// entities that have the target between them, for every single-instance
// attribute of the fixture and a spread of literals.
func TestQComplements(t *testing.T) {
	e := loadEntity(t, "testdata/q/vehicle.json")
	lits := []string{`5`, `55.5`, `0`, `-1e3`, `"Mercedes"`, `"red"`, `"red car"`, `true`, `false`,
		`2024-03-15`, `2024-03-15T09:30:00Z`, `08:30:00`, `urn:ngsi-ld:Person:1`, `Sedan`, `1..3`, `"a".."z"`, `[1,"x",true]`}
	paths := []string{"address[city]", "address[geo.floors]", "name[en]", "name[*]", "speed.accuracy", "speed.observedAt", "raw[value]"}
	for name, is := range e.Attrs {
		if len(is) == 1 {
			paths = append(paths, name)
		}
	}
	n := 0
	for _, path := range paths {
		has, err := ParseQ(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		not, _ := ParseQ("!"+path, nil)
		if has.Match(e) == not.Match(e) {
			t.Errorf("%s and !%s agree", path, path)
		}
		for _, lit := range lits {
			eq, err1 := ParseQ(path+"=="+lit, nil)
			ne, err2 := ParseQ(path+"!="+lit, nil)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s %v %v", lit, err1, err2)
			}
			if has.Match(e) && eq.Match(e) == ne.Match(e) {
				t.Errorf("%s==%s and %s!=%s both %v", path, lit, path, lit, eq.Match(e))
			}
			if !has.Match(e) && (eq.Match(e) || ne.Match(e)) {
				t.Errorf("%s does not exist, yet == %v, != %v", path, eq.Match(e), ne.Match(e))
			}
			n++
		}
		for _, re := range []string{`"^M"`, `"e"`, `"^$"`} {
			m, _ := ParseQ(path+"~="+re, nil)
			nm, _ := ParseQ(path+"!~="+re, nil)
			if m.Match(e) && nm.Match(e) {
				t.Errorf("%s~=%s and !~= both match", path, re)
			}
		}
	}
	t.Logf("%d pairs", n)
}
