// Package control is the daemon's local control socket: a Unix stream socket
// on which each connection carries one JSON request line and gets one JSON
// response line. `ftpct expect list` and `ftpct stats` are its clients.
//
// The socket is created mode 0600 (root only): it reveals the expectation
// table. Concurrency: Server.Serve runs one goroutine per connection, all
// owned by the context given to Serve.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/ftpct/ftpct.sock"

// Request is what a client sends.
type Request struct {
	Cmd string `json:"cmd"`
}

// Response is what the daemon answers.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// HandlerFunc answers one command.
type HandlerFunc func() (any, error)

// ErrRunning: another daemon answers on the socket.
var ErrRunning = errors.New("another ftpct daemon is already listening on this control socket")

// ErrNoDaemon: nothing answers on the socket.
var ErrNoDaemon = errors.New("no ftpct daemon answers on the control socket")

// Server serves the control socket.
type Server struct {
	path     string
	ln       *net.UnixListener
	handlers map[string]HandlerFunc
	once     sync.Once
}

// Listen creates the socket at path. A stale socket file (nothing answers)
// is replaced; a live one is an error wrapping ErrRunning.
func Listen(path string, handlers map[string]HandlerFunc) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if _, err := os.Stat(path); err == nil {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: %w", path, ErrRunning)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale control socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket mode: %w", err)
	}
	return &Server{path: path, ln: ln, handlers: handlers}, nil
}

// Serve answers requests until ctx is cancelled, then closes the socket.
func (s *Server) Serve(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() {
		<-ctx.Done()
		s.Close()
	}()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control socket accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(c)
		}()
	}
}

func (s *Server) serveConn(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	var resp Response
	var req Request
	switch {
	case err != nil:
		resp.Error = "read request: " + err.Error()
	case json.Unmarshal(line, &req) != nil:
		resp.Error = "request is not JSON"
	default:
		h, ok := s.handlers[req.Cmd]
		if !ok {
			resp.Error = fmt.Sprintf("unknown command %q", req.Cmd)
			break
		}
		v, err := h()
		if err != nil {
			resp.Error = err.Error()
			break
		}
		data, err := json.Marshal(v)
		if err != nil {
			resp.Error = "encode: " + err.Error()
			break
		}
		resp.OK, resp.Data = true, data
	}
	out, _ := json.Marshal(resp)
	_, _ = c.Write(append(out, '\n'))
}

// Close closes the socket and removes its file. Idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() { err = s.ln.Close() })
	return err
}

// Call sends cmd to the daemon at path and decodes the answer into v.
func Call(path, cmd string, v any) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", path, ErrNoDaemon, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := json.Marshal(Request{Cmd: cmd})
	if _, err := c.Write(append(req, '\n')); err != nil {
		return fmt.Errorf("%s: %w (%v)", path, ErrNoDaemon, err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("%s: %w (%v)", path, ErrNoDaemon, err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return fmt.Errorf("control response: %w", err)
	}
	if !resp.OK {
		return fmt.Errorf("daemon: %s", resp.Error)
	}
	return json.Unmarshal(resp.Data, v)
}
