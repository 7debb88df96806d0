package counters

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFlatKeepsOrder(t *testing.T) {
	vs := Values{{Desc: Desc{Name: "zeta"}, Value: 1}, {Desc: Desc{Name: "alpha", Kind: Gauge}, Value: 18446744073709551615}}
	b, err := json.Marshal(vs.Flat())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"zeta":1,"alpha":18446744073709551615}`, string(b)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if v, ok := vs.Get("alpha"); !ok || v != 18446744073709551615 {
		t.Errorf("Get(alpha) = %d, %v", v, ok)
	}
	if _, ok := vs.Get("beta"); ok {
		t.Errorf("Get(beta) found one")
	}
}

func TestValuesRoundTrip(t *testing.T) {
	vs := Values{{Desc: Desc{Name: "packets", Kind: Counter, Help: "packets"}, Value: 7}, {Desc: Desc{Name: "open", Kind: Gauge, Help: "now"}, Value: 2}}
	b, err := json.Marshal(vs)
	if err != nil {
		t.Fatal(err)
	}
	var got Values
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(vs, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	var k Kind
	if err := json.Unmarshal([]byte(`"histogram"`), &k); !errors.Is(err, ErrKind) {
		t.Errorf("unknown kind: %v, want ErrKind", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name  string
		descs []Desc
		want  error
	}{
		{name: "good", descs: []Desc{{Name: "expect_used", Help: "used"}, {Name: "open", Kind: Gauge, Help: "now"}}},
		{name: "no name", descs: []Desc{{Help: "x"}}, want: ErrDesc},
		{name: "camel case", descs: []Desc{{Name: "expectUsed", Help: "x"}}, want: ErrDesc},
		{name: "no help", descs: []Desc{{Name: "x", Help: " "}}, want: ErrDesc},
		{name: "table breaker", descs: []Desc{{Name: "x", Help: "a | b"}}, want: ErrDesc},
		{name: "twice", descs: []Desc{{Name: "x", Help: "a"}, {Name: "x", Help: "b"}}, want: ErrDesc},
		{name: "bad kind", descs: []Desc{{Name: "x", Help: "a", Kind: 7}}, want: ErrKind},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckAll(tt.descs); !errors.Is(err, tt.want) {
				t.Errorf("CheckAll = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMetricName(t *testing.T) {
	if got := (Desc{Name: "packets"}).Metric(); got != "ftpct_packets_total" {
		t.Errorf("counter metric %q", got)
	}
	if got := (Desc{Name: "sessions_open", Kind: Gauge}).Metric(); got != "ftpct_sessions_open" {
		t.Errorf("gauge metric %q", got)
	}
}
