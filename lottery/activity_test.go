package lottery

import (
	"errors"
	"testing"
)

// TestStateMoves checks every one of the 64 (from, to) pairs against the
// seed's table, so an allowed move cannot disappear and a forbidden one
// cannot sneak in.
func TestStateMoves(t *testing.T) {
	allowed := map[[2]State]bool{
		{1, 2}: true, {1, 7}: true,
		{2, 4}: true, {2, 6}: true, {2, 1}: true,
		{4, 5}: true, {4, 6}: true, {4, 7}: true,
		{6, 1}: true, {6, 7}: true,
		{5, 7}: true,
		{7, 8}: true,
		{8, 5}: true, {8, 7}: true,
	}
	for from := State(1); from <= 8; from++ {
		for to := State(1); to <= 8; to++ {
			want := allowed[[2]State{from, to}]
			t.Run(from.String()+"->"+to.String(), func(t *testing.T) {
				if got := CanMove(from, to); got != want {
					t.Fatalf("CanMove(%s, %s) = %v, want %v", from, to, got, want)
				}
			})
		}
	}
}

func TestTarget(t *testing.T) {
	tests := []struct {
		from   State
		action Action
		want   State
		err    error
	}{
		{StateEdit, ActionSubmit, StateArraigned, nil},
		{StateEdit, ActionClose, StateClose, nil},
		{StateEdit, ActionApprove, 0, ErrBadTransition},
		{StateArraigned, ActionApprove, StatePass, nil},
		{StateArraigned, ActionReject, StateRefuse, nil},
		{StateArraigned, ActionRevoke, StateEdit, nil},
		{StatePass, ActionStart, StateDoing, nil},
		{StatePass, ActionReject, StateRefuse, nil},
		{StatePass, ActionClose, StateClose, nil},
		{StatePass, ActionRevoke, 0, ErrBadTransition},
		{StateRefuse, ActionRevoke, StateEdit, nil},
		{StateRefuse, ActionClose, StateClose, nil},
		{StateDoing, ActionClose, StateClose, nil},
		{StateDoing, ActionStart, 0, ErrBadTransition},
		{StateClose, ActionReopen, StateOpen, nil},
		{StateClose, ActionStart, 0, ErrBadTransition},
		{StateOpen, ActionStart, StateDoing, nil},
		{StateOpen, ActionClose, StateClose, nil},
		{StateEdit, Action("explode"), 0, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.from.String()+"/"+string(tt.action), func(t *testing.T) {
			got, err := Target(tt.from, tt.action)
			if !errors.Is(err, tt.err) || (tt.err == nil && err != nil) {
				t.Fatalf("Target(%s, %s) error = %v, want %v", tt.from, tt.action, err, tt.err)
			}
			if got != tt.want {
				t.Fatalf("Target(%s, %s) = %s, want %s", tt.from, tt.action, got, tt.want)
			}
		})
	}
}
