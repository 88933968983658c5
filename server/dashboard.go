package server

import (
	"embed"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

// dashboardFiles is the live dashboard: a static page whose script polls
// the admin API with a token the operator types in (kept in the browser).
//
//go:embed dashboard/*
var dashboardFiles embed.FS

func (s *Server) handleDashboard(ctx *fasthttp.RequestCtx, p string) {
	name := strings.TrimPrefix(p, "/dashboard")
	if name == "" || name == "/" {
		name = "/index.html"
	}
	b, err := dashboardFiles.ReadFile("dashboard" + path.Clean(name))
	if err != nil {
		s.writeError(ctx, http.StatusNotFound, apiError{Code: codeNotFound, Message: "no dashboard file " + name})
		return
	}
	ctx.SetContentType(mime.TypeByExtension(path.Ext(name)))
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self'")
	ctx.SetBody(b)
}
