package control

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCallRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "ftpct.sock")
	type stats struct {
		Packets uint64 `json:"packets"`
	}
	srv, err := Listen(path, map[string]HandlerFunc{
		"stats": func() (any, error) { return stats{Packets: 42}, nil },
		"fail":  func() (any, error) { return nil, errors.New("boom") },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- srv.Serve(ctx) }()

	tests := []struct {
		name    string
		cmd     string
		want    stats
		wantErr bool
	}{
		{name: "stats", cmd: "stats", want: stats{Packets: 42}},
		{name: "handler error", cmd: "fail", wantErr: true},
		{name: "unknown command", cmd: "nope", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got stats
			err := Call(path, tt.cmd, &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Call(%q) error = %v, wantErr %v", tt.cmd, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Call(%q) (-want +got):\n%s", tt.cmd, diff)
			}
		})
	}

	// A second daemon on the same socket is refused.
	if _, err := Listen(path, nil); !errors.Is(err, ErrRunning) {
		t.Errorf("second Listen: err = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := Call(path, "stats", new(stats)); !errors.Is(err, ErrNoDaemon) {
		t.Errorf("Call after stop: err = %v, want ErrNoDaemon", err)
	}
	// The socket file is gone, so a new daemon can start.
	srv2, err := Listen(path, nil)
	if err != nil {
		t.Fatalf("Listen after stop: %v", err)
	}
	srv2.Close()
}
