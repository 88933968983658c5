package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/wasm"
)

// apiError is the JSON body of every error answer.
type apiError struct {
	Outcome lottery.Outcome `json:"outcome,omitempty"`
	Code    string          `json:"code"`
	Message string          `json:"message"`
}

// Stable error codes of the API.
const (
	codeInvalid      = "invalid_argument"
	codeNotFound     = "not_found"
	codeConflict     = "conflict"
	codeTransition   = "bad_transition"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
	codeUnauthorized = "unauthorized"
	codeTooLarge     = "body_too_large"
	codeMethod       = "method_not_allowed"
)

// errorTable maps domain sentinels to a status, a code and, for draws, an
// outcome. The first match wins, so the more specific errors come first.
var errorTable = []struct {
	err     error
	status  int
	code    string
	outcome lottery.Outcome
}{
	{lottery.ErrSoldOut, http.StatusConflict, "sold_out", lottery.OutcomeSoldOut},
	{lottery.ErrLimitReached, http.StatusConflict, "limit_reached", lottery.OutcomeLimitReached},
	{lottery.ErrNotActive, http.StatusConflict, "not_active", lottery.OutcomeNotActive},
	{lottery.ErrInvalid, http.StatusBadRequest, codeInvalid, ""},
	{lottery.ErrNotFound, http.StatusNotFound, codeNotFound, ""},
	{lottery.ErrBadTransition, http.StatusConflict, codeTransition, ""},
	{lottery.ErrConflict, http.StatusConflict, codeConflict, ""},
	{lottery.ErrTakeUsed, http.StatusConflict, codeConflict, ""},
	{wasm.ErrDrawUnavailable, http.StatusServiceUnavailable, "draw_unavailable", lottery.OutcomeError},
	{wasm.ErrRuleUnavailable, http.StatusServiceUnavailable, "rule_unavailable", lottery.OutcomeError},
	{lottery.ErrUnavailable, http.StatusServiceUnavailable, codeUnavailable, ""},
}

// statusOf maps an error to its HTTP status and body. Errors that match no
// sentinel are internal (500); their text still names what failed.
func statusOf(err error) (int, apiError) {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.status, apiError{Outcome: e.outcome, Code: e.code, Message: err.Error()}
		}
	}
	return http.StatusInternalServerError, apiError{Code: codeInternal, Message: err.Error()}
}

// encodedError is an error answer encoded once: its status and JSON body.
type encodedError struct {
	status int
	body   []byte
}

// bareSentinelBodies holds the encoded answers of the sentinels the domain
// returns unwrapped on its no-I/O paths (a sold-out activity), so the
// busiest answer of a flash sale costs no encoding. Built once, never written.
var bareSentinelBodies = func() map[error]encodedError {
	m := make(map[error]encodedError)
	for _, err := range []error{lottery.ErrSoldOut, lottery.ErrNotActive, lottery.ErrLimitReached} {
		status, body := statusOf(err)
		b, _ := json.Marshal(body)
		m[err] = encodedError{status, b}
	}
	return m
}()
