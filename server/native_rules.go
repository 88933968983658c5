package server

import (
	"fmt"
	"net/http"
	"sync"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/rules"
	"github.com/flashlottery/lottery/sdk/abi"
)

// Rule trees served natively.
//
// POST /api/v1/rules/trees?engine=native registers a tree that the
// reference evaluator (rules.Evaluator) serves at /api/v1/draw/rule instead
// of a compiled module. It exists to compare the engines at the endpoint
// (`make bench` measures the Wasm engine against it) and to rule the
// compiler out when a decision looks wrong. A native tree lives in this
// process's memory only: it is not persisted and not shared with the other
// edges of a cluster. Registering the same tree id again with the default
// engine (engine=wasm) drops the native one; registering it natively makes it
// serve natively even when a compiled module of that tree exists.

// Rule engines of POST /api/v1/rules/trees (query parameter engine).
const (
	engineWasm   = "wasm"
	engineNative = "native"
)

// nativeTrees holds the natively served trees; its zero value is empty and
// ready. Lookups take no lock.
type nativeTrees struct {
	m sync.Map // tree id -> *rules.Evaluator
}

func (n *nativeTrees) get(treeID string) *rules.Evaluator {
	if e, ok := n.m.Load(treeID); ok {
		return e.(*rules.Evaluator)
	}
	return nil
}

func (n *nativeTrees) put(treeID string, e *rules.Evaluator) { n.m.Store(treeID, e) }

func (n *nativeTrees) drop(treeID string) { n.m.Delete(treeID) }

// treeEngine reads the engine query parameter of a tree upload.
func treeEngine(ctx *fasthttp.RequestCtx) (string, error) {
	switch e := string(ctx.QueryArgs().Peek("engine")); e {
	case "", engineWasm:
		return engineWasm, nil
	case engineNative:
		return engineNative, nil
	default:
		return "", fmt.Errorf("%w: engine %q: want %s (compiled, the default) or %s (reference evaluator, this process only)", lottery.ErrInvalid, e, engineWasm, engineNative)
	}
}

// registerNativeTree answers a tree upload with engine=native: the
// validated tree is served by the reference evaluator.
func (s *Server) registerNativeTree(ctx *fasthttp.RequestCtx, t *rules.Tree) {
	e, err := rules.NewEvaluator(t)
	if err != nil {
		s.fail(ctx, fmt.Errorf("%w: rule tree %q: %v", lottery.ErrInvalid, t.ID, err))
		return
	}
	s.native.put(t.ID, e)
	s.log.Info("rule tree registered for the native evaluator", "tree", t.ID)
	s.writeJSON(ctx, http.StatusCreated, map[string]any{"treeId": t.ID, "engine": engineNative})
}

// decideTree picks the activity for in with the tree treeID: natively when
// the tree was registered so, else through its compiled module.
func (s *Server) decideTree(treeID string, in abi.RuleInput) (activityID int64, matched bool, err error) {
	if e := s.native.get(treeID); e != nil {
		id, ok, err := e.Evaluate(in.Attrs)
		if err != nil {
			return 0, false, fmt.Errorf("%w: attributes: %v", lottery.ErrInvalid, err)
		}
		return id, ok, nil
	}
	name := treeModule(treeID)
	id, ok, err := s.modules.Decide(s.ctx, name, in)
	if err != nil {
		// Only now ask whether the tree exists: Active copies the version's
		// description, which the hot path need not pay for.
		if _, found := s.modules.Active(name); !found {
			return 0, false, fmt.Errorf("rule tree %q: %w", treeID, lottery.ErrNotFound)
		}
	}
	return id, ok, err
}
