package rules

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDefaultConfig(t *testing.T) {
	want := Config{Ports: []uint16{21}, Queue: 21, Queues: 1, Mark: 0x00100000, HoldMark: 0x00200000, Table: "ftpct", IPv6: true, Accept: true}
	if diff := cmp.Diff(want, DefaultConfig()); diff != "" {
		t.Errorf("DefaultConfig (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string // "" = valid
	}{
		{name: "defaults", mod: func(*Config) {}},
		{name: "several ports", mod: func(c *Config) { c.Ports = []uint16{21, 2121, 990} }},
		{name: "max queue range", mod: func(c *Config) { c.Queue, c.Queues = 65534, 2 }},
		{name: "table with digits and underscore", mod: func(c *Config) { c.Table = "ftpct_2" }},
		{name: "no ports", mod: func(c *Config) { c.Ports = nil }, wantErr: "invalid rules config: no control ports"},
		{name: "port 0", mod: func(c *Config) { c.Ports = []uint16{21, 0} }, wantErr: "invalid rules config: control port 0"},
		{name: "duplicate port", mod: func(c *Config) { c.Ports = []uint16{21, 2121, 21} }, wantErr: "invalid rules config: duplicate control port 21"},
		{name: "zero queues", mod: func(c *Config) { c.Queues = 0 }, wantErr: "invalid rules config: queues must be at least 1"},
		{name: "queue range overflows", mod: func(c *Config) { c.Queue, c.Queues = 65535, 2 }, wantErr: "invalid rules config: queues 65535..65536 exceed 65535"},
		{name: "zero mark", mod: func(c *Config) { c.Mark = 0 }, wantErr: "invalid rules config: mark must not be 0"},
		{name: "zero hold mark", mod: func(c *Config) { c.HoldMark = 0 }, wantErr: "invalid rules config: hold-mark must not be 0"},
		{name: "hold mark overlaps mark", mod: func(c *Config) { c.HoldMark = 0x00300000 }, wantErr: "invalid rules config: hold-mark 0x00300000 overlaps mark 0x00100000"},
		{name: "empty table", mod: func(c *Config) { c.Table = "" }, wantErr: "invalid rules config: empty table name"},
		{name: "table starts with digit", mod: func(c *Config) { c.Table = "1ftp" }, wantErr: `invalid rules config: table name "1ftp": want a letter followed by letters, digits, '_' or '-'`},
		{name: "table with space", mod: func(c *Config) { c.Table = "ftp ct" }, wantErr: `invalid rules config: table name "ftp ct": want a letter followed by letters, digits, '_' or '-'`},
		{name: "table keyword", mod: func(c *Config) { c.Table = "dnat" }, wantErr: `invalid rules config: table name "dnat" is an nft keyword`},
		{name: "table too long", mod: func(c *Config) { c.Table = "abcdefghijklmnopqrstuvwxyzabcdefg" }, wantErr: `invalid rules config: table name "abcdefghijklmnopqrstuvwxyzabcdefg" longer than 32 bytes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.mod(&c)
			err := c.Validate()
			got := ""
			if err != nil {
				got = err.Error()
				if !errors.Is(err, ErrInvalidConfig) {
					t.Errorf("error %v does not wrap ErrInvalidConfig", err)
				}
			}
			if diff := cmp.Diff(tc.wantErr, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}
