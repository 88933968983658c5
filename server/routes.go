package server

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/lottery"
)

const outcomeInvalid lottery.Outcome = "invalid"

// handle routes a request. The draw paths are matched first, on the path's
// bytes: the path becomes a string (an allocation) only past them.
func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	method := string(ctx.Method())
	switch string(ctx.Path()) { // compared without a copy
	case "/api/v1/draw":
		if method != fasthttp.MethodPost {
			s.notAllowed(ctx, "POST")
			return
		}
		s.handleDraw(ctx)
		return
	case "/api/v1/draw/rule":
		if method != fasthttp.MethodPost {
			s.notAllowed(ctx, "POST")
			return
		}
		s.handleRuleDraw(ctx)
		return
	case "/healthz":
		s.writeJSON(ctx, http.StatusOK, map[string]string{"status": "ok"})
		return
	case "/readyz":
		s.handleReady(ctx)
		return
	case "/metrics":
		s.metrics.handler(ctx)
		return
	}
	path := string(ctx.Path())
	if path == "/dashboard" || strings.HasPrefix(path, "/dashboard/") {
		if method != fasthttp.MethodGet {
			s.notAllowed(ctx, "GET")
			return
		}
		s.handleDashboard(ctx, path)
		return
	}
	if !strings.HasPrefix(path, "/api/v1/") {
		s.writeError(ctx, http.StatusNotFound, apiError{Code: codeNotFound, Message: "no route " + path})
		return
	}
	if !s.authorized(ctx) {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="lottery admin"`)
		s.writeError(ctx, http.StatusUnauthorized, apiError{Code: codeUnauthorized, Message: "admin endpoints need Authorization: Bearer <token>"})
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "/api/v1/"), "/")
	switch {
	case parts[0] == "activities" && len(parts) == 1:
		switch method {
		case fasthttp.MethodGet:
			s.handleListActivities(ctx)
		case fasthttp.MethodPost:
			s.handleDeploy(ctx)
		default:
			s.notAllowed(ctx, "GET, POST")
		}
	case parts[0] == "activities" && len(parts) >= 2 && len(parts) <= 3:
		id, err := strconv.ParseInt(parts[1], 10, 64)
		if err != nil || id <= 0 {
			s.writeError(ctx, http.StatusBadRequest, apiError{Code: codeInvalid, Message: "activity id must be a positive integer"})
			return
		}
		switch {
		case len(parts) == 2 && method == fasthttp.MethodGet:
			s.handleGetActivity(ctx, id)
		case len(parts) == 3 && parts[2] == "audit" && method == fasthttp.MethodGet:
			s.handleAudit(ctx, id)
		case len(parts) == 3 && method == fasthttp.MethodPost:
			s.handleMove(ctx, id, parts[2])
		default:
			s.notAllowed(ctx, "GET (activity, audit), POST (state action)")
		}
	case parts[0] == "users" && len(parts) == 3 && parts[2] == "orders":
		if method != fasthttp.MethodGet {
			s.notAllowed(ctx, "GET")
			return
		}
		s.handleUserOrders(ctx, parts[1])
	case parts[0] == "modules" && len(parts) == 1:
		switch method {
		case fasthttp.MethodGet:
			s.handleListModules(ctx)
		case fasthttp.MethodPost:
			s.handleUpload(ctx)
		default:
			s.notAllowed(ctx, "GET, POST")
		}
	case parts[0] == "modules" && len(parts) >= 3 && parts[len(parts)-1] == "rollback":
		if method != fasthttp.MethodPost {
			s.notAllowed(ctx, "POST")
			return
		}
		s.handleRollback(ctx, strings.Join(parts[1:len(parts)-1], "/"))
	case parts[0] == "rules" && len(parts) == 2 && parts[1] == "trees":
		if method != fasthttp.MethodPost {
			s.notAllowed(ctx, "POST")
			return
		}
		s.handleTree(ctx)
	case parts[0] == "analytics" && len(parts) == 2:
		if method != fasthttp.MethodGet {
			s.notAllowed(ctx, "GET")
			return
		}
		s.handleAnalytics(ctx, parts[1])
	default:
		s.writeError(ctx, http.StatusNotFound, apiError{Code: codeNotFound, Message: "no route " + path})
	}
}

func (s *Server) notAllowed(ctx *fasthttp.RequestCtx, allow string) {
	ctx.Response.Header.Set("Allow", allow)
	s.writeError(ctx, http.StatusMethodNotAllowed, apiError{Code: codeMethod, Message: "method " + string(ctx.Method()) + " not allowed; use " + allow})
}

// fail answers an error through the one mapping table. Internal and
// unavailable errors are logged here, and only here.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	if b, ok := bareSentinelBodies[err]; ok { // the sold-out fast path: no encoding
		ctx.SetStatusCode(b.status)
		ctx.SetContentType("application/json")
		ctx.Response.SetBodyRaw(b.body)
		return
	}
	status, body := statusOf(err)
	if status >= 500 {
		s.log.Warn("request failed", "path", string(ctx.Path()), "status", status, "err", err)
	}
	s.writeError(ctx, status, body)
}

func (s *Server) writeError(ctx *fasthttp.RequestCtx, status int, body apiError) {
	s.writeJSON(ctx, status, &body)
}

func (s *Server) writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // a broken invariant: every answer type marshals
		status, b = http.StatusInternalServerError, []byte(`{"code":"internal","message":"encode answer"}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

// handleReady answers /readyz: 503 while starting or shutting down; else
// 200, with status "ready", or "degraded" when a module version in the
// store did not load here (the previous version keeps serving, so the edge
// stays in rotation: every edge runs the same checks, and taking them all
// out for a version none can load would stop the sale) or the module store
// does not answer. A degraded body names each failing module, the version
// it should serve, the version it serves and the error.
func (s *Server) handleReady(ctx *fasthttp.RequestCtx) {
	if err := s.ready(); err != nil {
		s.writeJSON(ctx, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	failures, storeErr := s.degraded()
	if len(failures) == 0 && storeErr == "" {
		s.writeJSON(ctx, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	body := map[string]any{"status": "degraded", "modules": failures}
	if storeErr != "" {
		body["moduleStore"] = storeErr
	}
	s.writeJSON(ctx, http.StatusOK, body)
}
