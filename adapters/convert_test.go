package adapters_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/piazza-city/piazza/adapters"
)

func TestParseNumber(t *testing.T) {
	tests := []struct {
		in      string
		decimal byte
		want    float64
		ok      bool
	}{
		{"12", 0, 12, true},
		{"-12", 0, -12, true},
		{"+7", 0, 7, true},
		{" 3,5 ", 0, 3.5, true},
		{"3.5", 0, 3.5, true},
		{"1.234,56", 0, 1234.56, true},
		{"1,234.56", 0, 1234.56, true},
		{"1.234.567", 0, 1234567, true},
		{"1,234,567", 0, 1234567, true},
		{"1 234 567,8", 0, 1234567.8, true},
		{"1\u00a0234,5", 0, 1234.5, true},
		{"1'234.5", 0, 1234.5, true},
		{",5", 0, 0.5, true},
		{"1.234", ',', 1234, true},
		{"1.234", '.', 1.234, true},
		{"1.234", 0, 1.234, true},
		{"1,5", '.', 0, false},
		{"1,234", '.', 1234, true},
		{"1e3", 0, 1000, true},
		{"2,5e-3", ',', 0.0025, true},
		{"0012", 0, 12, true},
		{"", 0, 0, false},
		{"-", 0, 0, false},
		{"12a", 0, 0, false},
		{"1.23.4", 0, 0, false},
		{"12,34,5", 0, 0, false},
		{"1.234.5", ',', 0, false},
		{"1,2,3", ',', 0, false},
		{"1 234.567,8", 0, 0, false},
		{"1.", 0, 0, false},
		{"NaN", 0, 0, false},
		{"Inf", 0, 0, false},
		{"1e999", 0, 0, false},
		{"１２", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in+"/"+string(rune(max(tt.decimal, '0'))), func(t *testing.T) {
			got, err := adapters.ParseNumber(tt.in, tt.decimal)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseNumber(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			}
			if err != nil {
				if !errors.Is(err, adapters.ErrInvalidNumber) || !strings.Contains(err.Error(), tt.in) {
					t.Errorf("error %q should wrap ErrInvalidNumber and quote the input", err)
				}
				return
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("ParseNumber(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseInteger(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2702", 2702, true},
		{"020001", 20001, true},
		{"15.179", 15179, true},
		{"15.179,0", 15179, true},
		{"1,5", 0, false},
		{"9007199254740993", 0, false},
		{"-3", -3, true},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := adapters.ParseInteger(tt.in, ',')
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseInteger(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	tests := []struct {
		in   string
		loc  *time.Location
		want string
		prec adapters.Precision
	}{
		{"10-01-2024", rome, "2024-01-10T00:00:00+01:00", adapters.PrecisionDay},
		{"10/01/2024", rome, "2024-01-10T00:00:00+01:00", adapters.PrecisionDay},
		{"1/7/2024", rome, "2024-07-01T00:00:00+02:00", adapters.PrecisionDay},
		{"10.01.2024", rome, "2024-01-10T00:00:00+01:00", adapters.PrecisionDay},
		{"2024-01", rome, "2024-01-01T00:00:00+01:00", adapters.PrecisionMonth},
		{"2024-07", rome, "2024-07-01T00:00:00+02:00", adapters.PrecisionMonth},
		{"07/2024", rome, "2024-07-01T00:00:00+02:00", adapters.PrecisionMonth},
		{"2024", rome, "2024-01-01T00:00:00+01:00", adapters.PrecisionYear},
		{"2024-01-10", rome, "2024-01-10T00:00:00+01:00", adapters.PrecisionDay},
		{"2024-01-10T08:30:00Z", rome, "2024-01-10T09:30:00+01:00", adapters.PrecisionTime},
		{"2024-01-10T08:30:00+05:00", rome, "2024-01-10T04:30:00+01:00", adapters.PrecisionTime},
		{"2024-01-10T08:30:00", rome, "2024-01-10T08:30:00+01:00", adapters.PrecisionTime},
		{"2024-01-10 08:30", rome, "2024-01-10T08:30:00+01:00", adapters.PrecisionTime},
		{"2024-01-10T08:30:00.250", rome, "2024-01-10T08:30:00.25+01:00", adapters.PrecisionTime},
		{"2021-01-01 00:00:00 +01:00", rome, "2021-01-01T00:00:00+01:00", adapters.PrecisionTime}, // EEA e-reporting
		{"20240110", rome, "2024-01-10T00:00:00+01:00", adapters.PrecisionDay},
		{"2024-01-10T08:30:00+0100", rome, "2024-01-10T08:30:00+01:00", adapters.PrecisionTime},
		{"10/01/2024 08:30:15", rome, "2024-01-10T08:30:15+01:00", adapters.PrecisionTime},
		{"31-03-2024 02:30", rome, "2024-03-31T03:30:00+02:00", adapters.PrecisionTime}, // inside the DST gap
		{"10-01-2024", ny, "2024-01-10T00:00:00-05:00", adapters.PrecisionDay},
		{"10-01-2024", time.UTC, "2024-01-10T00:00:00Z", adapters.PrecisionDay},
	}
	for _, tt := range tests {
		t.Run(tt.in+"@"+tt.loc.String(), func(t *testing.T) {
			got, prec, err := adapters.ParseTime(tt.in, tt.loc)
			if err != nil {
				t.Fatal(err)
			}
			if s := adapters.FormatDateTime(got); s != tt.want || prec != tt.prec {
				t.Errorf("ParseTime(%q) = %s (precision %d), want %s (%d)", tt.in, s, prec, tt.want, tt.prec)
			}
		})
	}
	for _, bad := range []string{"", "31-02-2024", "2024-13", "10-01-24x", "yesterday", "20241310", "2024-01-10T25:00:00", "0000-01-01", strings.Repeat("1", 50)} {
		t.Run("bad/"+bad, func(t *testing.T) {
			if _, _, err := adapters.ParseTime(bad, rome); !errors.Is(err, adapters.ErrInvalidDate) {
				t.Errorf("ParseTime(%q) error = %v, want ErrInvalidDate", bad, err)
			}
		})
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"true": true, "SI": true, "sì": true, "1": true, "no": false, "False": false, "0": false} {
		if got, err := adapters.ParseBool(in); err != nil || got != want {
			t.Errorf("ParseBool(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := adapters.ParseBool("forse"); !errors.Is(err, adapters.ErrInvalidValue) {
		t.Errorf("ParseBool(forse) = %v", err)
	}
}

func TestNormalizeName(t *testing.T) {
	for _, pair := range [][2]string{
		{"DATA ELABORAZIONE", "DATA_ELABORAZIONE"},
		{"data elaborazione", "Data-Elaborazione"},
		{"\uFEFFCOD_ISTAT_COMUNE", "cod istat comune"},
		{"IN CARTA LIBERA", "in_carta_libera"},
	} {
		if a, b := adapters.NormalizeName(pair[0]), adapters.NormalizeName(pair[1]); a != b {
			t.Errorf("%q -> %q but %q -> %q", pair[0], a, pair[1], b)
		}
	}
	if adapters.NormalizeName("COMUNE") == adapters.NormalizeName("COMUNI") {
		t.Error("different names fold together")
	}
}

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"1.234,56", "1,234.56", "-3", "1e3", "1 234", ",5", "1.2.3", "'", "+-1"} {
		f.Add(s, byte(0))
		f.Add(s, byte(','))
	}
	f.Fuzz(func(t *testing.T, s string, decimal byte) {
		if decimal != ',' && decimal != '.' {
			decimal = 0
		}
		v, err := adapters.ParseNumber(s, decimal)
		if err != nil {
			if !errors.Is(err, adapters.ErrInvalidNumber) {
				t.Fatalf("error %v does not wrap ErrInvalidNumber", err)
			}
			return
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			t.Fatalf("ParseNumber(%q) = %v", s, v)
		}
		if _, err := adapters.ParseInteger(s, decimal); err == nil && v != math.Trunc(v) {
			t.Fatalf("ParseInteger accepted %q whose value %v is not whole", s, v)
		}
	})
}

func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"10-01-2024", "2024-01", "2024-01-10T08:30:00Z", "1/2006", "31/12/9999 23:59", "2024"} {
		f.Add(s)
	}
	rome, _ := time.LoadLocation("Europe/Rome")
	f.Fuzz(func(t *testing.T, s string) {
		tm, p, err := adapters.ParseTime(s, rome)
		if err != nil {
			if !errors.Is(err, adapters.ErrInvalidDate) {
				t.Fatalf("error %v does not wrap ErrInvalidDate", err)
			}
			return
		}
		if p < adapters.PrecisionYear || p > adapters.PrecisionTime {
			t.Fatalf("precision %d", p)
		}
		out := adapters.FormatDateTime(tm)
		back, err := time.Parse(time.RFC3339Nano, out)
		if err != nil || !back.Equal(tm) {
			t.Fatalf("%q -> %q does not round-trip: %v", s, out, err)
		}
	})
}
