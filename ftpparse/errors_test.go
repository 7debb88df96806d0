package ftpparse

import (
	"errors"
	"strings"
	"testing"
)

func TestErrorsWrapMalformed(t *testing.T) {
	seen := map[string]bool{}
	for k := KindPORT; k < numKinds; k++ {
		for f := faultMissing; f < numFaults; f++ {
			err := errOf(k, f)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("errOf(%v, %d) = %v does not wrap ErrMalformed", k, f, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "parse "+k.String()+": ") || !strings.Contains(msg, faultText[f]) {
				t.Errorf("errOf(%v, %d) = %q lacks its context", k, f, msg)
			}
			if seen[msg] {
				t.Errorf("duplicate error text %q", msg)
			}
			seen[msg] = true
		}
	}
	for f := faultNone; f < numFaults; f++ {
		if faultText[f] == "" {
			t.Errorf("fault %d has no text", f)
		}
	}
}

func TestParseErrorsAreMalformed(t *testing.T) {
	for _, tt := range []struct {
		name  string
		parse func([]byte) (Match, error)
		cases []parseCase
	}{
		{name: "client", parse: ParseClient, cases: allClientCases()},
		{name: "server", parse: ParseServer, cases: allServerCases()},
	} {
		for _, tc := range tt.cases {
			m, err := tt.parse([]byte(tc.line))
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("%s %q: error %v does not wrap ErrMalformed", tt.name, tc.line, err)
			}
			if m != (Match{}) {
				t.Errorf("%s %q: error with non-zero Match %+v", tt.name, tc.line, m)
			}
		}
	}
}
