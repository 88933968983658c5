package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/rules"
	"github.com/flashlottery/lottery/sdk/abi"
)

// treeModule is the module name a compiled rule tree is registered under.
func treeModule(treeID string) string { return "tree/" + treeID }

// handleTree answers POST /api/v1/rules/trees: a JSON or YAML rule tree,
// validated (every problem listed), compiled to a Wasm module and
// registered as the rule module tree/{id}; with ?engine=native it is served
// by the reference evaluator instead (native_rules.go).
func (s *Server) handleTree(ctx *fasthttp.RequestCtx) {
	t, err := rules.Decode(ctx.PostBody())
	if err != nil {
		s.fail(ctx, fmt.Errorf("%w: rule tree: %v", lottery.ErrInvalid, err))
		return
	}
	if err := t.Validate(); err != nil {
		s.fail(ctx, fmt.Errorf("%w: rule tree %q: %v", lottery.ErrInvalid, t.ID, err))
		return
	}
	engine, err := treeEngine(ctx)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if engine == engineNative {
		s.registerNativeTree(ctx, t) // native_rules.go
		return
	}
	bin, err := rules.Compile(t)
	if err != nil {
		s.fail(ctx, fmt.Errorf("%w: compile rule tree %q: %v", lottery.ErrInvalid, t.ID, err))
		return
	}
	v, err := s.modules.Upload(s.ctx, treeModule(t.ID), abi.KindRule, bin)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.native.drop(t.ID)
	s.log.Info("rule tree compiled and registered", "tree", t.ID, "module", v.ID(), "bytes", len(bin))
	s.writeJSON(ctx, http.StatusCreated, map[string]any{"treeId": t.ID, "module": v})
}

// ruleDrawRequest is the body of POST /api/v1/draw/rule.
type ruleDrawRequest struct {
	UserID     *string                    `json:"userId"`
	TreeID     string                     `json:"treeId"`
	Attributes map[string]json.RawMessage `json:"attributes"`
}

// ParseAttributes turns {"userAge": 23, "userTags": ["a","b"], ...} into
// ABI attributes, checking each key's type.
func ParseAttributes(raw map[string]json.RawMessage) ([]abi.Attr, error) {
	if len(raw) > 16 {
		return nil, fmt.Errorf("%w: at most 16 attributes", lottery.ErrInvalid)
	}
	var out []abi.Attr
	for name, v := range raw {
		k, ok := abi.ParseKey(name)
		if !ok {
			return nil, fmt.Errorf("%w: unknown attribute %q", lottery.ErrInvalid, name)
		}
		switch {
		case k.Type() == abi.AttrInt:
			var n int64
			if err := json.Unmarshal(v, &n); err != nil {
				return nil, fmt.Errorf("%w: attribute %s must be an integer", lottery.ErrInvalid, name)
			}
			out = append(out, abi.IntAttr(k, n))
		case k.Repeatable():
			var tags []string
			if err := json.Unmarshal(v, &tags); err != nil || len(tags) > 32 {
				return nil, fmt.Errorf("%w: attribute %s must be a list of at most 32 strings", lottery.ErrInvalid, name)
			}
			for _, tag := range tags {
				out = append(out, abi.StrAttr(k, tag))
			}
		default:
			var str string
			if err := json.Unmarshal(v, &str); err != nil {
				return nil, fmt.Errorf("%w: attribute %s must be a string", lottery.ErrInvalid, name)
			}
			out = append(out, abi.StrAttr(k, str))
		}
	}
	return out, nil
}

// handleRuleDraw answers POST /api/v1/draw/rule: the tree's module picks the
// activity from the attributes, then the draw runs as in /api/v1/draw and
// the answer names the activity.
func (s *Server) handleRuleDraw(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	var req ruleDrawRequest
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		s.fail(ctx, err)
		return
	}
	if req.UserID == nil || req.TreeID == "" {
		s.fail(ctx, fmt.Errorf("%w: userId and treeId are required", lottery.ErrInvalid))
		return
	}
	if err := lottery.ValidateUserID(*req.UserID); err != nil {
		s.fail(ctx, err)
		return
	}
	attrs, err := ParseAttributes(req.Attributes)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	in := abi.RuleInput{TimeMs: start.UnixMilli(), Attrs: attrs}
	// The ABI's own bounds, checked here so that bad attributes are a 400
	// whatever the tree (the engine checks them again: one short loop).
	if err := in.Validate(); err != nil {
		s.fail(ctx, fmt.Errorf("%w: attributes: %v", lottery.ErrInvalid, err))
		return
	}
	activityID, matched, err := s.decideTree(req.TreeID, in)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if !matched {
		s.writeJSON(ctx, http.StatusConflict, apiError{Outcome: "no_match", Code: "no_match", Message: fmt.Sprintf("rule tree %q: no activity matches for these attributes", req.TreeID)})
		return
	}
	s.draw(ctx, *req.UserID, activityID, start)
}
