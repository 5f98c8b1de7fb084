package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/bulkhead-dev/bulkhead/workspace"
)

// Options configure a Server.
type Options struct {
	Service *workspace.Service
	Logger  *slog.Logger
	// MaxBody caps request bodies (default 1 MiB).
	MaxBody int64
	// ShutdownGrace is how long in-flight requests and runs may take to
	// finish after shutdown begins (default 30 s).
	ShutdownGrace time.Duration
	// Snapshots opens workspaces' snapshot repositories (default: local
	// directories under <state>/snapshots).
	Snapshots workspace.SnapshotStores
}

// Server is the HTTP API over one workspace.Service.
type Server struct {
	svc      *workspace.Service
	tokens   *TokenStore
	log      *slog.Logger
	metrics  *Metrics
	opts     Options
	routes   []route
	handler  http.Handler
	draining atomic.Bool
}

// New builds the server and its routes.
func New(opts Options) (*Server, error) {
	if opts.Service == nil {
		return nil, errors.New("server: no workspace service")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	s := &Server{
		svc:     opts.Service,
		tokens:  &TokenStore{db: opts.Service.ControlDB()},
		log:     opts.Logger.With("subsystem", "server"),
		metrics: newMetrics(),
		opts:    opts,
	}
	m := s.metrics
	opts.Service.ObserveEgress(func(ws, verdict string, bytes int64) {
		if verdict == "bytes" {
			m.EgressBytes.Add(float64(bytes), ws)
			return
		}
		m.Egress.Inc(ws, verdict)
	})
	s.routes = s.routeTable()
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.pattern, s.observe(rt.method+" "+rt.pattern, s.authorize(rt)))
	}
	mux.Handle("/", s.observe("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, apiErr(404, CodeNotFound, "no route %s %s; see /openapi.json", r.Method, r.URL.Path))
	})))
	s.handler = mux
	return s, nil
}

// Tokens returns the token store.
func (s *Server) Tokens() *TokenStore { return s.tokens }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the API handler.
func (s *Server) Handler() http.Handler { return s.handler }

// SocketName is the unix socket in the state dir through which the CLI talks
// to a running server.
const SocketName = "bulkhead.sock"

// Serve listens on addr (TCP) and on the unix socket in the state dir until
// ctx is cancelled, then shuts down gracefully: stop accepting, let requests
// finish for ShutdownGrace, then cancel them.
func (s *Server) Serve(ctx context.Context, addr string, ready func(tcp net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	sockPath := s.svc.StateDir() + "/" + SocketName
	os.Remove(sockPath) // stale from a crash: we hold the state dir lock, so no one else uses it
	uln, err := listenUnix(sockPath)
	if err != nil {
		ln.Close()
		return err
	}
	defer os.Remove(sockPath)

	baseCtx, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if _, ok := c.(*peerConn); ok {
				return context.WithValue(ctx, keyPrincipal, &Token{ID: "unix-socket", Name: "local socket", Scope: AdminScope})
			}
			return ctx
		},
	}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	go func() { errc <- hs.Serve(uln) }()
	s.log.Info("serving", "addr", ln.Addr().String(), "socket", sockPath)
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("shutting down", "grace", s.opts.ShutdownGrace)
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
	defer cancel()
	err = hs.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		cancelBase() // cancel what is still running; handlers journal their state
		err = hs.Close()
	}
	return err
}

// authorize checks the bearer token (or the unix-socket principal) against
// the route's scope, and for workspace routes that the token's workspace is
// the one named. A workspace token naming another workspace gets the same
// 404 as a workspace that does not exist, so tokens cannot probe for names.
func (s *Server) authorize(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt.scope == scopePublic {
			s.serve(rt, w, r)
			return
		}
		tok := principal(r.Context())
		if tok == nil {
			h := r.Header.Get("Authorization")
			secret, ok := strings.CutPrefix(h, "Bearer ")
			if !ok || secret == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="bulkhead"`)
				s.writeError(w, r, apiErr(401, CodeUnauthorized, "missing bearer token: send Authorization: Bearer <token>"))
				return
			}
			var err error
			if tok, err = s.tokens.Lookup(strings.TrimSpace(secret)); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="bulkhead", error="invalid_token"`)
				s.writeError(w, r, apiErr(401, CodeUnauthorized, "invalid or revoked token"))
				return
			}
			r = r.WithContext(context.WithValue(r.Context(), keyPrincipal, tok))
		}
		if rt.scope == scopeSocket && tok.ID != "unix-socket" {
			s.writeError(w, r, apiErr(403, CodeForbidden, "this operation is only allowed over the local socket"))
			return
		}
		if rt.scope == scopeAdmin && !tok.Admin() {
			s.writeError(w, r, apiErr(403, CodeForbidden, "this operation needs an admin token"))
			return
		}
		// Every workspace id the request names, in the path or the query,
		// must be the token's own.
		names := []string{r.PathValue("ws")}
		names = append(names, r.URL.Query()["workspace"]...)
		for _, ws := range names {
			if ws == "" || tok.Admin() {
				continue
			}
			if ws != tok.Scope {
				s.writeError(w, r, apiErr(404, CodeNotFound, "workspace not found: %q", ws))
				return
			}
		}
		if !tok.Admin() {
			// The token's workspace must still be the one it was made for.
			wsp, err := s.svc.Get(r.Context(), tok.Scope)
			if err != nil || wsp.HostUID != tok.ScopeUID {
				s.writeError(w, r, apiErr(401, CodeUnauthorized, "invalid or revoked token"))
				return
			}
		}
		s.serve(rt, w, r)
	})
}

func (s *Server) serve(rt route, w http.ResponseWriter, r *http.Request) {
	if err := rt.h(w, r); err != nil {
		s.writeError(w, r, err)
	}
}
