package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
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
	// More would miss a stray closing bracket; only the end of the body
	// (after whitespace) may follow the object.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("%w: body: trailing data after the JSON object", lottery.ErrInvalid)
	}
	return nil
}

// parseDraw validates a draw body and returns the user and activity ids.
// The canonical shape takes a fast path that allocates only the user id;
// anything else goes through the strict decoder. FuzzParseDraw holds the two
// paths to the same answers.
func parseDraw(body []byte) (string, int64, error) {
	if user, id, ok := parseDrawFast(body); ok {
		return user, id, nil
	}
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
	s.draw(ctx, userID, activityID, start)
}

// draw runs a validated draw, answers it and counts it in the metrics; the
// tail of both draw endpoints.
func (s *Server) draw(ctx *fasthttp.RequestCtx, userID string, activityID int64, start time.Time) {
	res, err := s.svc.Draw(s.ctx, userID, activityID)
	if err != nil {
		s.fail(ctx, err)
		s.metrics.draw(lottery.OutcomeOf(err), start)
		return
	}
	s.writeDraw(ctx, res)
	s.metrics.draw(res.Outcome, start)
}

// writeDraw answers a draw that reached win or lose.
func (s *Server) writeDraw(ctx *fasthttp.RequestCtx, res *lottery.Result) {
	out := drawResponse{Outcome: res.Outcome, ActivityID: res.Activity.ID, Module: res.Module, Seed: res.Seed}
	if res.Take != nil {
		out.TakeID = res.Take.ID
	}
	if o := res.Order; o != nil {
		out.OrderID = o.ID
		out.Award = &awardJSON{ID: o.Award.ID, Name: o.Award.Name, Type: o.Award.Type, Content: o.Award.Content}
	}
	s.writeJSON(ctx, http.StatusOK, &out)
}

// parseDrawFast matches {"userId":"<printable ASCII, no escapes>","activityId":<1..18 digits>}
// with the keys in either order and JSON whitespace between tokens. It
// reports false for anything else, which the strict decoder then judges.
func parseDrawFast(b []byte) (user string, id int64, ok bool) {
	p := fastParser{b: b}
	if !p.lit('{') {
		return "", 0, false
	}
	var haveUser, haveID bool
	for i := 0; i < 2; i++ {
		if i == 1 && !p.lit(',') {
			return "", 0, false
		}
		key, ok := p.str()
		if !ok || !p.lit(':') {
			return "", 0, false
		}
		switch {
		case string(key) == "userId" && !haveUser:
			v, ok := p.str()
			if !ok || len(v) == 0 || len(v) > 64 {
				return "", 0, false
			}
			user, haveUser = string(v), true
		case string(key) == "activityId" && !haveID:
			if id, ok = p.num(); !ok {
				return "", 0, false
			}
			haveID = true
		default:
			return "", 0, false
		}
	}
	if !p.lit('}') {
		return "", 0, false
	}
	p.ws()
	return user, id, p.i == len(p.b)
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *fastParser) lit(c byte) bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes.
func (p *fastParser) str() ([]byte, bool) {
	if !p.lit('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// num reads a positive integer of 1 to 18 digits without a leading zero.
func (p *fastParser) num() (int64, bool) {
	p.ws()
	start := p.i
	var n int64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' && p.i-start < 18 {
		n = n*10 + int64(p.b[p.i]-'0')
		p.i++
	}
	if p.i == start || p.b[start] == '0' {
		return 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] >= '0' && p.b[p.i] <= '9' || p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	return n, true
}
