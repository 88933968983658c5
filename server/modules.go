package server

import (
	"fmt"
	"net/http"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// handleUpload answers POST /api/v1/modules?name=NAME&kind=draw|rule with
// the module's bytes as the body: validated, instrumented, compiled,
// warmed, canaried, then swapped in; a refused module changes nothing.
func (s *Server) handleUpload(ctx *fasthttp.RequestCtx) {
	name := string(ctx.QueryArgs().Peek("name"))
	kind, err := abi.ParseKind(string(ctx.QueryArgs().Peek("kind")))
	if err != nil || name == "" {
		s.fail(ctx, fmt.Errorf("%w: query parameters name and kind (draw or rule) are required; the body is the module", lottery.ErrInvalid))
		return
	}
	body := append([]byte(nil), ctx.PostBody()...) // the host keeps the bytes after the handler returns
	v, err := s.modules.Upload(s.ctx, name, kind, body)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.log.Info("module uploaded", "module", v.ID(), "kind", kind.String(), "bytes", len(body))
	s.writeJSON(ctx, http.StatusCreated, v)
}

func (s *Server) handleListModules(ctx *fasthttp.RequestCtx) {
	st := s.modules.Stats()
	s.writeJSON(ctx, http.StatusOK, map[string]any{"modules": nonNil(s.modules.List()), "generation": st.Generation, "failures": s.modules.Failures()})
}

// handleRollback answers POST /api/v1/modules/{name}/rollback with
// {"sha256": "<full or at least 8 hex digits>"}.
func (s *Server) handleRollback(ctx *fasthttp.RequestCtx, name string) {
	var req struct {
		SHA256 string `json:"sha256"`
	}
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		s.fail(ctx, err)
		return
	}
	v, err := s.modules.Rollback(s.ctx, name, req.SHA256)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.log.Info("module rolled back", "module", v.ID())
	s.writeJSON(ctx, http.StatusOK, v)
}
