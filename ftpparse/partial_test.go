package ftpparse

import "testing"

func TestMayAnnounce(t *testing.T) {
	tests := []struct {
		name       string
		partial    string
		fromServer bool
		want       bool
	}{
		{name: "empty client", partial: "", want: true},
		{name: "P", partial: "P", want: true},
		{name: "po lower", partial: "po", want: true},
		{name: "PORT no space yet", partial: "PORT", want: true},
		{name: "PORT with part of address", partial: "PORT 10,0,", want: true},
		{name: "EPRT", partial: "eprt |1|10.0", want: true},
		{name: "PORTX", partial: "PORTX", want: false},
		{name: "NOOP", partial: "NO", want: false},
		{name: "RETR", partial: "RETR file", want: false},
		{name: "leading space", partial: " PORT", want: false},
		{name: "server 22", partial: "22", fromServer: true, want: true},
		{name: "server 227 text", partial: "227 Entering Passive Mode (10,", fromServer: true, want: true},
		{name: "server 229", partial: "229 Entering Ext", fromServer: true, want: true},
		{name: "server 227 continuation", partial: "227-", fromServer: true, want: false},
		{name: "server 230", partial: "230 ", fromServer: true, want: false},
		{name: "client text from server", partial: "PORT", fromServer: true, want: false},
		{name: "server text from client", partial: "227 ", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MayAnnounce([]byte(tt.partial), tt.fromServer); got != tt.want {
				t.Errorf("MayAnnounce(%q, %v) = %v, want %v", tt.partial, tt.fromServer, got, tt.want)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() { MayAnnounce([]byte("PORT 10,0"), false) }); n != 0 {
		t.Errorf("%v allocs, want 0", n)
	}
}
