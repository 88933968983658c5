package wasm

import (
	"errors"
	"fmt"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/sdk/abi"
)

// Sentinel errors of module calls. Both wrap lottery.ErrUnavailable; the HTTP
// layer maps them to 503 with the codes draw_unavailable and
// rule_unavailable.
var (
	// ErrDrawUnavailable means a draw module could not answer: it is not
	// registered or loaded, it trapped (including running out of fuel or
	// memory), or it returned an error code.
	ErrDrawUnavailable = fmt.Errorf("draw module unavailable: %w", lottery.ErrUnavailable)
	// ErrRuleUnavailable is ErrDrawUnavailable for rule modules.
	ErrRuleUnavailable = fmt.Errorf("rule module unavailable: %w", lottery.ErrUnavailable)
)

// CallError is the error of a failed module call. It wraps ErrDrawUnavailable
// or ErrRuleUnavailable (after its kind) and the reason, which may be an
// abi.Code the module returned.
type CallError struct {
	Kind    abi.Kind
	Module  string // the module's name
	Version string // the first 12 hex digits of its sha256, or "" if no version was loaded
	Err     error  // the reason
}

// Error names the kind, module and version, and the reason.
func (e *CallError) Error() string {
	id := e.Module
	if e.Version != "" {
		id += "@" + e.Version
	}
	return fmt.Sprintf("%v module %s: %v", e.Kind, id, e.Err)
}

// Unwrap returns the kind's sentinel and the reason.
func (e *CallError) Unwrap() []error {
	s := ErrDrawUnavailable
	if e.Kind == abi.KindRule {
		s = ErrRuleUnavailable
	}
	return []error{s, e.Err}
}

// RejectError is why an upload (or a rollback, or a restart's reload) of a
// module was refused. It wraps lottery.ErrInvalid.
type RejectError struct {
	Reason string
}

// Error returns the reason.
func (e *RejectError) Error() string { return "wasm: module rejected: " + e.Reason }

// Unwrap returns lottery.ErrInvalid.
func (e *RejectError) Unwrap() error { return lottery.ErrInvalid }

func rejectf(format string, args ...any) error {
	return &RejectError{Reason: fmt.Sprintf(format, args...)}
}

// errFuel and errDeadline are the reasons of a call stopped by its limits.
var (
	errFuel     = errors.New("ran out of fuel")
	errDeadline = errors.New("exceeded its deadline")
	errClosed   = errors.New("host closed")
)
