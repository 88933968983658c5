package server

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// authorized checks the admin bearer token in constant time.
func (s *Server) authorized(ctx *fasthttp.RequestCtx) bool {
	h := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	const prefix = "Bearer "
	if len(h) <= len(prefix) || string(h[:len(prefix)]) != prefix {
		return false
	}
	return subtle.ConstantTimeCompare(h[len(prefix):], []byte(s.token)) == 1
}

// deployRequest is the body of POST /api/v1/activities.
type deployRequest struct {
	Activity *activityJSON `json:"activity"`
	Strategy *strategyJSON `json:"strategy"`
}

// activityJSON is an activity as operators write and read it.
type activityJSON struct {
	ID         int64     `json:"activityId"`
	Name       string    `json:"name"`
	Desc       string    `json:"desc,omitempty"`
	BeginAt    time.Time `json:"beginTime"`
	EndAt      time.Time `json:"endTime"`
	StockCount int64     `json:"stockCount"`
	TakeCount  int       `json:"takeCount"`
	StrategyID int64     `json:"strategyId"`
	// Read-only fields, ignored on deploy.
	State        string `json:"state,omitempty"`
	StateCode    int    `json:"stateCode,omitempty"`
	StockSurplus int64  `json:"stockSurplusCount,omitempty"`
	StockLeft    *int64 `json:"stockLeft,omitempty"`
}

// strategyJSON is a strategy with its awards; rates are probabilities in [0,1].
type strategyJSON struct {
	ID        int64               `json:"strategyId"`
	Desc      string              `json:"strategyDesc,omitempty"`
	Mode      lottery.Mode        `json:"strategyMode"`
	GrantType lottery.GrantType   `json:"grantType"`
	GrantDate time.Time           `json:"grantDate,omitzero"`
	Module    string              `json:"drawModule,omitempty"`
	Awards    []strategyAwardJSON `json:"awards"`
}

type strategyAwardJSON struct {
	ID         string            `json:"awardId"`
	Type       lottery.AwardType `json:"awardType"`
	Name       string            `json:"awardName"`
	Content    string            `json:"awardContent"`
	AwardCount int64             `json:"awardCount"`
	Rate       float64           `json:"awardRate"`
	// Read-only.
	AwardLeft *int64 `json:"awardLeft,omitempty"`
}

func (a *activityJSON) domain() *lottery.Activity {
	return &lottery.Activity{ID: a.ID, Name: a.Name, Desc: a.Desc, BeginAt: a.BeginAt, EndAt: a.EndAt, StockCount: a.StockCount, TakeCount: a.TakeCount, StrategyID: a.StrategyID, State: lottery.StateEdit}
}

func (st *strategyJSON) domain() (*lottery.Strategy, error) {
	s := &lottery.Strategy{ID: st.ID, Desc: st.Desc, Mode: st.Mode, GrantType: st.GrantType, GrantDate: st.GrantDate, Module: st.Module}
	for i, a := range st.Awards {
		if a.Rate < 0 || a.Rate > 1 || a.Rate != a.Rate {
			return nil, fmt.Errorf("%w: awards[%d].awardRate must be in [0,1]", lottery.ErrInvalid, i)
		}
		s.Details = append(s.Details, lottery.StrategyDetail{Award: lottery.Award{ID: a.ID, Type: a.Type, Name: a.Name, Content: a.Content}, AwardCount: a.AwardCount, Rate: lottery.RateFromFloat(a.Rate)})
	}
	return s, nil
}

func activityOut(a *lottery.Activity) activityJSON {
	return activityJSON{ID: a.ID, Name: a.Name, Desc: a.Desc, BeginAt: a.BeginAt, EndAt: a.EndAt, StockCount: a.StockCount, TakeCount: a.TakeCount, StrategyID: a.StrategyID, State: a.State.String(), StateCode: int(a.State), StockSurplus: a.StockSurplus}
}

func strategyOut(s *lottery.Strategy, left map[string]int64) *strategyJSON {
	out := &strategyJSON{ID: s.ID, Desc: s.Desc, Mode: s.Mode, GrantType: s.GrantType, GrantDate: s.GrantDate, Module: s.Module}
	for _, d := range s.Details {
		a := strategyAwardJSON{ID: d.ID, Type: d.Type, Name: d.Name, Content: d.Content, AwardCount: d.AwardCount, Rate: float64(d.Rate) / lottery.RateScale}
		if l, ok := left[d.ID]; ok {
			a.AwardLeft = &l
		}
		out.Awards = append(out.Awards, a)
	}
	return out
}

func (s *Server) handleDeploy(ctx *fasthttp.RequestCtx) {
	var req deployRequest
	if err := decodeStrict(ctx.PostBody(), &req); err != nil {
		s.fail(ctx, err)
		return
	}
	if req.Activity == nil || req.Strategy == nil {
		s.fail(ctx, fmt.Errorf("%w: activity and strategy are required", lottery.ErrInvalid))
		return
	}
	st, err := req.Strategy.domain()
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if st.Module != "" {
		v, ok := s.modules.Active(st.Module)
		if !ok {
			// Uploaded through another edge since this one last polled?
			_ = s.modules.Sync(s.ctx) // a store error shows in readyz; the check below answers
			v, ok = s.modules.Active(st.Module)
		}
		if !ok || v.Kind != abi.KindDraw {
			s.fail(ctx, fmt.Errorf("%w: drawModule %q is not an uploaded draw module (GET /api/v1/modules lists them)", lottery.ErrInvalid, st.Module))
			return
		}
	}
	a := req.Activity.domain()
	if err := s.svc.Deploy(s.ctx, a, st); err != nil {
		s.fail(ctx, err)
		return
	}
	s.log.Info("activity deployed", "activity", a.ID, "strategy", st.ID)
	s.writeJSON(ctx, http.StatusCreated, map[string]any{"activity": activityOut(a), "strategy": strategyOut(st, nil)})
}

func (s *Server) handleListActivities(ctx *fasthttp.RequestCtx) {
	after, err := queryInt(ctx, "after", 0, 0, 1<<62)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	limit, err := queryInt(ctx, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	views, err := s.svc.Activities(s.ctx, after, int(limit))
	if err != nil {
		s.fail(ctx, err)
		return
	}
	out := make([]activityJSON, len(views))
	for i := range views {
		out[i] = activityOut(&views[i].Activity)
		out[i].StockLeft = &views[i].StockLeft
	}
	s.writeJSON(ctx, http.StatusOK, map[string]any{"activities": out})
}

func (s *Server) handleGetActivity(ctx *fasthttp.RequestCtx, id int64) {
	v, err := s.svc.Activity(s.ctx, id)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	a := activityOut(&v.Activity)
	a.StockLeft = &v.StockLeft
	s.writeJSON(ctx, http.StatusOK, map[string]any{"activity": a, "strategy": strategyOut(v.Strategy, v.AwardLeft)})
}

func (s *Server) handleMove(ctx *fasthttp.RequestCtx, id int64, action string) {
	a, err := s.svc.Move(s.ctx, id, lottery.Action(action))
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.log.Info("activity state moved", "activity", id, "action", action, "state", a.State.String())
	s.writeJSON(ctx, http.StatusOK, map[string]any{"activity": activityOut(a)})
}

func (s *Server) handleAudit(ctx *fasthttp.RequestCtx, id int64) {
	v, err := s.svc.Activity(s.ctx, id)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	au, err := s.store.Audit(s.ctx, id)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	s.writeJSON(ctx, http.StatusOK, map[string]any{"activity": activityOut(&v.Activity), "stockLeft": v.StockLeft, "strategy": strategyOut(v.Strategy, v.AwardLeft), "audit": au})
}

func (s *Server) handleUserOrders(ctx *fasthttp.RequestCtx, userID string) {
	limit, err := queryInt(ctx, "limit", 100, 1, 1000)
	if err != nil {
		s.fail(ctx, err)
		return
	}
	orders, err := s.svc.UserOrders(s.ctx, userID, int(limit))
	if err != nil {
		s.fail(ctx, err)
		return
	}
	if orders == nil {
		orders = []lottery.Order{}
	}
	s.writeJSON(ctx, http.StatusOK, map[string]any{"orders": orders})
}

// queryInt reads an integer query parameter within [lo, hi]; def < lo means required.
func queryInt(ctx *fasthttp.RequestCtx, name string, def, lo, hi int64) (int64, error) {
	raw := ctx.QueryArgs().Peek(name)
	if len(raw) == 0 {
		if def < lo {
			return 0, fmt.Errorf("%w: query parameter %s is required", lottery.ErrInvalid, name)
		}
		return def, nil
	}
	v, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, fmt.Errorf("%w: query parameter %s must be an integer in %d..%d", lottery.ErrInvalid, name, lo, hi)
	}
	return v, nil
}
