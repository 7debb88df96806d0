package control

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// serve starts a server on a fresh socket and stops it when the test ends.
func serve(t *testing.T, setup func(*Server)) (string, context.CancelFunc) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ftpct.sock")
	srv, err := Listen(path, map[string]HandlerFunc{})
	if err != nil {
		t.Fatal(err)
	}
	setup(srv)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Serve did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return path, stop
}

type filterArgs struct {
	Session uint64 `json:"session,omitempty"`
}

func TestCallArgs(t *testing.T) {
	path, _ := serve(t, func(s *Server) {
		s.HandleArgs("echo", func(args json.RawMessage) (any, error) {
			var a filterArgs
			if err := DecodeArgs(args, &a); err != nil {
				return nil, err
			}
			return a, nil
		})
		s.HandleStream("watch", func(ctx context.Context, _ json.RawMessage, _ func(any) error) error { <-ctx.Done(); return nil })
	})
	tests := []struct {
		name    string
		cmd     string
		args    any
		want    filterArgs
		wantErr string
	}{
		{name: "no args", cmd: "echo", want: filterArgs{}},
		{name: "args", cmd: "echo", args: filterArgs{Session: 7}, want: filterArgs{Session: 7}},
		{name: "unknown field", cmd: "echo", args: map[string]int{"sesion": 7}, wantErr: "bad arguments"},
		{name: "stream called as command", cmd: "watch", wantErr: "is a stream command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got filterArgs
			err := CallArgs(path, tt.cmd, tt.args, &got)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// A stream delivers items until the client leaves; the server's handler
// then sees its context done.
func TestStreamClientLeaves(t *testing.T) {
	handlerDone := make(chan struct{})
	path, _ := serve(t, func(s *Server) {
		s.HandleStream("count", func(ctx context.Context, args json.RawMessage, send func(any) error) error {
			defer close(handlerDone)
			var a struct{ From int }
			if err := DecodeArgs(args, &a); err != nil {
				return err
			}
			for i := a.From; ; i++ {
				if err := send(i); err != nil {
					return nil
				}
				if i == a.From+2 {
					<-ctx.Done() // three items, then wait for the client to go
					return nil
				}
			}
		})
	})
	ctx, cancel := context.WithCancel(context.Background())
	var got []int
	err := Stream(ctx, path, "count", map[string]int{"From": 5}, func(item json.RawMessage) error {
		var n int
		if err := json.Unmarshal(item, &n); err != nil {
			return err
		}
		got = append(got, n)
		if len(got) == 3 {
			cancel()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if diff := cmp.Diff([]int{5, 6, 7}, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	select {
	case <-handlerDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream handler did not notice the client left")
	}
}

func TestStreamEnds(t *testing.T) {
	tests := []struct {
		name    string
		handler StreamFunc
		stop    bool // stop the daemon once the stream runs
		wantErr error
		wantMsg string
	}{
		{name: "daemon stops", stop: true, wantErr: ErrStreamClosed,
			handler: func(ctx context.Context, _ json.RawMessage, send func(any) error) error {
				_ = send("hello")
				<-ctx.Done()
				return nil
			}},
		{name: "handler fails", wantMsg: "daemon: bad arguments",
			handler: func(ctx context.Context, args json.RawMessage, send func(any) error) error {
				return ErrArgs
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, stop := serve(t, func(s *Server) { s.HandleStream("s", tt.handler) })
			err := Stream(context.Background(), path, "s", nil, func(json.RawMessage) error {
				if tt.stop {
					go stop()
				}
				return nil
			})
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Errorf("err = %v, want %q", err, tt.wantMsg)
			}
		})
	}
}

// A client that stops reading cannot hold a stream forever: the server
// gives up writing to it after its write timeout.
func TestStreamStuckClient(t *testing.T) {
	ended := make(chan struct{})
	path, _ := serve(t, func(s *Server) {
		s.writeTimeout = 200 * time.Millisecond
		big := strings.Repeat("x", 64<<10)
		s.HandleStream("flood", func(ctx context.Context, _ json.RawMessage, send func(any) error) error {
			defer close(ended)
			for ctx.Err() == nil {
				if err := send(big); err != nil {
					return nil
				}
			}
			return nil
		})
	})
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(`{"cmd":"flood"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream to a client that does not read did not end")
	}
}
