// Package control is the daemon's local control socket: a Unix stream socket
// on which each connection carries one JSON request line (a Request: a
// command and its optional arguments) and gets one JSON response line (a
// Response). `ftpct stats`, `ftpct expect ...` and `ftpct sessions list` are
// its clients.
//
// A stream command (`ftpct expect watch`) answers with a Response whose
// Stream is true and then keeps the connection open: every further line is
// a Response carrying one item in Data, until the client closes the
// connection, the daemon stops (it closes it), or the stream fails (a last
// line with OK false and the Error).
//
// The socket is created mode 0600 (root only): it reveals the expectation
// table. Concurrency: Server.Serve runs one goroutine per connection, all
// owned by the context given to Serve.
package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// Args are the command's arguments, a JSON object; absent for none.
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is what the daemon answers.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
	// Stream: a stream follows, one Response per line (see the package doc).
	Stream bool `json:"stream,omitempty"`
}

// HandlerFunc answers one command without arguments (any are ignored).
type HandlerFunc func() (any, error)

// ArgsFunc answers one command with arguments; args is empty when the
// request had none (see DecodeArgs).
type ArgsFunc func(args json.RawMessage) (any, error)

// StreamFunc serves one stream: it calls send for each item until ctx is
// done (the client left or the daemon stops) or send fails, and returns
// nil then. An error it returns otherwise (bad arguments, say) is the
// stream's last line.
type StreamFunc func(ctx context.Context, args json.RawMessage, send func(item any) error) error

// DecodeArgs decodes a request's arguments into v (a pointer to a struct),
// refusing unknown fields. Empty args leave v as it is.
func DecodeArgs(args json.RawMessage, v any) error {
	if len(args) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrArgs, err)
	}
	return nil
}

// ErrRunning: another daemon answers on the socket.
var ErrRunning = errors.New("another ftpct daemon is already listening on this control socket")

// ErrNoDaemon: nothing answers on the socket.
var ErrNoDaemon = errors.New("no ftpct daemon answers on the control socket")

// ErrArgs: a request's arguments do not fit its command.
var ErrArgs = errors.New("bad arguments")

// ErrStreamClosed: the daemon ended a stream (it is stopping).
var ErrStreamClosed = errors.New("the daemon closed the stream")

// defaultWriteTimeout is how long a reply or a stream item may take to be
// written to a client that does not read: a stuck watcher's stream ends
// after this long.
const defaultWriteTimeout = 5 * time.Second

// Server serves the control socket.
type Server struct {
	path     string
	ln       *net.UnixListener
	handlers map[string]HandlerFunc
	once     sync.Once

	writeTimeout time.Duration

	mu      sync.RWMutex
	args    map[string]ArgsFunc
	streams map[string]StreamFunc
}

// HandleArgs registers a command that takes arguments.
func (s *Server) HandleArgs(cmd string, f ArgsFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.args[cmd] = f
}

// HandleStream registers a stream command.
func (s *Server) HandleStream(cmd string, f StreamFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.streams[cmd] = f
}

func (s *Server) lookup(cmd string) (HandlerFunc, ArgsFunc, StreamFunc) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.handlers[cmd], s.args[cmd], s.streams[cmd]
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
	return &Server{path: path, ln: ln, handlers: handlers, writeTimeout: defaultWriteTimeout,
		args: map[string]ArgsFunc{}, streams: map[string]StreamFunc{}}, nil
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
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c *net.UnixConn) {
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
		h, a, st := s.lookup(req.Cmd)
		var v any
		switch {
		case st != nil:
			s.serveStream(ctx, c, req, st)
			return
		case h != nil:
			v, err = h()
		case a != nil:
			v, err = a(req.Args)
		default:
			err = fmt.Errorf("unknown command %q", req.Cmd)
		}
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
	_ = s.writeLine(c, resp)
}

// serveStream runs f for the connection c until the client leaves, the
// daemon stops or f returns.
func (s *Server) serveStream(ctx context.Context, c *net.UnixConn, req Request, f StreamFunc) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	_ = c.SetDeadline(time.Time{})
	// The client sends nothing more; its read side ending means it left.
	left := make(chan struct{})
	go func() {
		defer close(left)
		_, _ = io.Copy(io.Discard, c)
		cancel()
	}()
	defer func() {
		c.Close() // ends the reader above
		<-left
	}()
	send := func(item any) error {
		data, err := json.Marshal(item)
		if err != nil {
			return fmt.Errorf("encode: %w", err)
		}
		return s.writeLine(c, Response{OK: true, Data: data})
	}
	if err := s.writeLine(c, Response{OK: true, Stream: true}); err != nil {
		return
	}
	if err := f(ctx, req.Args, send); err != nil && ctx.Err() == nil {
		_ = s.writeLine(c, Response{Error: err.Error()})
	}
}

// writeLine writes v as one JSON line, giving up after s.writeTimeout.
func (s *Server) writeLine(c net.Conn, v Response) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = c.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	_, err = c.Write(append(out, '\n'))
	return err
}

// Close closes the socket and removes its file. Idempotent.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() { err = s.ln.Close() })
	return err
}

// Call sends cmd to the daemon at path and decodes the answer into v.
func Call(path, cmd string, v any) error { return CallArgs(path, cmd, nil, v) }

// CallArgs sends cmd with args (marshalled to a JSON object; nil for none)
// and decodes the answer into v.
func CallArgs(path, cmd string, args, v any) error {
	c, _, resp, err := open(path, cmd, args, false)
	if err != nil {
		return err
	}
	c.Close()
	return json.Unmarshal(resp.Data, v)
}

// Stream sends the stream command cmd with args and calls fn with each
// item the daemon sends, until ctx is done (it returns nil), fn fails, or
// the daemon ends the stream (an error wrapping ErrStreamClosed, or the
// daemon's error).
func Stream(ctx context.Context, path, cmd string, args any, fn func(item json.RawMessage) error) error {
	c, r, _, err := open(path, cmd, args, true)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for {
		resp, err := readResponse(path, r)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrNoDaemon) {
				return fmt.Errorf("%s: %w", path, ErrStreamClosed)
			}
			return err
		}
		if err := fn(resp.Data); err != nil {
			return err
		}
	}
}

// open connects to the daemon, sends the request and reads the first
// response, which must say cmd is a stream command when stream is set and
// a plain one otherwise. The caller closes the connection and reads the
// rest of a stream from the reader.
func open(path, cmd string, args any, stream bool) (net.Conn, *bufio.Reader, Response, error) {
	req := Request{Cmd: cmd}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return nil, nil, Response{}, fmt.Errorf("encode arguments: %w", err)
		}
		req.Args = b
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, nil, Response{}, err
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, nil, Response{}, fmt.Errorf("%s: %w (%v)", path, ErrNoDaemon, err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(append(line, '\n')); err != nil {
		c.Close()
		return nil, nil, Response{}, fmt.Errorf("%s: %w (%v)", path, ErrNoDaemon, err)
	}
	_ = c.SetDeadline(time.Now().Add(5 * time.Second)) // a fresh 5 s for the answer
	r := bufio.NewReader(c)
	resp, err := readResponse(path, r)
	switch {
	case err != nil:
	case resp.Stream && !stream:
		err = fmt.Errorf("%s: %q is a stream command", path, cmd)
	case !resp.Stream && stream:
		err = fmt.Errorf("%s: %q is not a stream command", path, cmd)
	}
	if err != nil {
		c.Close()
		return nil, nil, Response{}, err
	}
	return c, r, resp, nil
}

// readResponse reads one response line; a failed one is an error.
func readResponse(path string, r *bufio.Reader) (Response, error) {
	var resp Response
	line, err := r.ReadBytes('\n')
	if err != nil {
		return resp, fmt.Errorf("%s: %w (%v)", path, ErrNoDaemon, err)
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return resp, fmt.Errorf("control response: %w", err)
	}
	if !resp.OK {
		return resp, fmt.Errorf("daemon: %s", resp.Error)
	}
	return resp, nil
}
