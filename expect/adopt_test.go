package expect

import (
	"errors"
	"testing"
	"time"
)

func TestExpectAdopt(t *testing.T) {
	tests := []struct {
		name    string
		lim     Limits
		have    []Request
		adopt   Request
		wantErr error
	}{
		{name: "kept with its own expiry", lim: Limits{PerSession: 1, Total: 10, Timeout: time.Minute}, adopt: natReq(1, cli1, 50000)},
		{name: "tuple taken", lim: Limits{PerSession: 2, Total: 10, Timeout: time.Minute},
			have: []Request{natReq(2, cli2, 50000)}, adopt: natReq(1, cli1, 50000), wantErr: ErrConflict},
		{name: "session full: nothing evicted", lim: Limits{PerSession: 1, Total: 10, Timeout: time.Minute},
			have: []Request{natReq(1, cli1, 50001)}, adopt: natReq(1, cli1, 50000), wantErr: ErrFull},
		{name: "table full", lim: Limits{PerSession: 1, Total: 1, Timeout: time.Minute},
			have: []Request{natReq(2, cli2, 50001)}, adopt: natReq(1, cli1, 50000), wantErr: ErrFull},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := NewTable(tt.lim)
			for _, r := range tt.have {
				if _, _, _, err := tab.Add(r, t0, nil); err != nil {
					t.Fatal(err)
				}
			}
			expires := t0.Add(17 * time.Second)
			x, err := tab.Adopt(tt.adopt, t0, expires)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Adopt error = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if tab.Len() != len(tt.have) {
					t.Errorf("table has %d expectations after a refused Adopt, want %d", tab.Len(), len(tt.have))
				}
				return
			}
			if x.Port != tt.adopt.Port || !x.Expires.Equal(expires) {
				t.Errorf("adopted %+v, want port %d expiring at %v", x, tt.adopt.Port, expires)
			}
			if got := tab.Expire(expires, nil); len(got) != 1 || got[0].ID != x.ID {
				t.Errorf("Expire at its expiry = %+v, want the adopted expectation", got)
			}
		})
	}
}
