package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/flashlottery/lottery/lottery"
)

// drawRequest is the body of POST /api/v1/draw.
type drawRequest struct {
	UserID     *string `json:"userId"`
	ActivityID *int64  `json:"activityId"`
}

// awardJSON is an award as the draw answer shows it.
type awardJSON struct {
	ID      string            `json:"id"`
	Name    string            `json:"name"`
	Type    lottery.AwardType `json:"type"`
	Content string            `json:"content"`
}

// drawResponse is the answer of a draw that reached win or lose.
type drawResponse struct {
	Outcome    lottery.Outcome `json:"outcome"`
	ActivityID int64           `json:"activityId"`
	TakeID     int64           `json:"takeId,string,omitempty"`
	OrderID    int64           `json:"orderId,string,omitempty"`
	Award      *awardJSON      `json:"award,omitempty"`
	Module     string          `json:"module,omitempty"`
	Seed       uint64          `json:"seed,string,omitempty"`
}

// decodeStrict decodes exactly one JSON value into v: unknown fields,
// trailing data and wrong types are errors wrapping lottery.ErrInvalid.
func decodeStrict(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: body: %v", lottery.ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body: trailing data after the JSON object", lottery.ErrInvalid)
	}
	return nil
}

// parseDraw validates a draw body and returns the user and activity ids.
func parseDraw(body []byte) (string, int64, error) {
	var req drawRequest
	if err := decodeStrict(body, &req); err != nil {
		return "", 0, err
	}
	if req.UserID == nil || req.ActivityID == nil {
		return "", 0, fmt.Errorf("%w: userId (string) and activityId (integer) are required", lottery.ErrInvalid)
	}
	if err := lottery.ValidateUserID(*req.UserID); err != nil {
		return "", 0, err
	}
	if *req.ActivityID <= 0 {
		return "", 0, fmt.Errorf("%w: activityId must be a positive integer", lottery.ErrInvalid)
	}
	return *req.UserID, *req.ActivityID, nil
}

func (s *Server) handleDraw(ctx *fasthttp.RequestCtx) {
	start := time.Now()
	body := ctx.PostBody()
	if len(body) > s.cfg.HTTP.MaxDrawBodyBytes {
		s.writeError(ctx, http.StatusRequestEntityTooLarge, apiError{Code: codeTooLarge, Message: "draw body over " + strconv.Itoa(s.cfg.HTTP.MaxDrawBodyBytes) + " bytes"})
		s.metrics.draw(outcomeInvalid, start)
		return
	}
	userID, activityID, err := parseDraw(body)
	if err != nil {
		s.fail(ctx, err)
		s.metrics.draw(outcomeInvalid, start)
		return
	}
	dctx, cancel := context.WithTimeout(s.ctx, s.cfg.HTTP.DrawTimeout)
	res, err := s.svc.Draw(dctx, userID, activityID)
	cancel()
	if err != nil {
		s.fail(ctx, err)
		s.metrics.draw(lottery.OutcomeOf(err), start)
		return
	}
	out := drawResponse{Outcome: res.Outcome, ActivityID: res.Activity.ID, Module: res.Module, Seed: res.Seed}
	if res.Take != nil {
		out.TakeID = res.Take.ID
	}
	if o := res.Order; o != nil {
		out.OrderID = o.ID
		out.Award = &awardJSON{ID: o.Award.ID, Name: o.Award.Name, Type: o.Award.Type, Content: o.Award.Content}
	}
	s.writeJSON(ctx, http.StatusOK, &out)
	s.metrics.draw(res.Outcome, start)
}
