package orders

import (
	"errors"
	"hash/fnv"
	"strconv"
	"testing"

	"github.com/flashlottery/lottery/lottery"
)

func TestNewRouter(t *testing.T) {
	tests := []struct {
		db, tb int
		ok     bool
	}{
		{2, 4, true},
		{1, 1, true},
		{64, 64, true},
		{0, 4, false},
		{2, 0, false},
		{65, 1, false},
		{1, 65, false},
		{-1, -1, false},
	}
	for _, tt := range tests {
		r, err := NewRouter(tt.db, tt.tb)
		if tt.ok {
			if err != nil || r.DBCount != tt.db || r.TBCount != tt.tb {
				t.Errorf("NewRouter(%d, %d) = %+v, %v", tt.db, tt.tb, r, err)
			}
			continue
		}
		if !errors.Is(err, lottery.ErrInvalid) {
			t.Errorf("NewRouter(%d, %d) error = %v, want ErrInvalid", tt.db, tt.tb, err)
		}
	}
}

// TestRoute pins the documented hash: a change here moves users away from
// their data, so the expected values are computed independently with
// hash/fnv and also pinned literally for the seed's 2 x 4.
func TestRoute(t *testing.T) {
	ref := func(r Router, user string) (int, int) {
		h := fnv.New32a()
		h.Write([]byte(user))
		v := h.Sum32()
		v ^= v >> 16
		idx := int(v % uint32(r.DBCount*r.TBCount))
		return idx / r.TBCount, idx % r.TBCount
	}
	tests := []struct {
		user   string
		db, tb int
	}{
		// Pinned for 2 x 4: FNV-1a("") = 0x811c9dc5, spread 0x811c1cd9, mod 8 = 1.
		{"", 0, 1},
		{"xiaofuge", -1, -1},
		{"user-1", -1, -1},
		{"用户", -1, -1},
	}
	r, err := NewRouter(2, 4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		db, tb := r.Route(tt.user)
		wdb, wtb := ref(r, tt.user)
		if db != wdb || tb != wtb {
			t.Errorf("Route(%q) = %d, %d; reference %d, %d", tt.user, db, tb, wdb, wtb)
		}
		if tt.db >= 0 && (db != tt.db || tb != tt.tb) {
			t.Errorf("Route(%q) = %d, %d; pinned %d, %d", tt.user, db, tb, tt.db, tt.tb)
		}
	}
	for _, shape := range [][2]int{{1, 1}, {1, 8}, {3, 5}, {64, 64}} {
		r, _ := NewRouter(shape[0], shape[1])
		for i := range 1000 {
			u := "u" + strconv.Itoa(i)
			db, tb := r.Route(u)
			wdb, wtb := ref(r, u)
			if db != wdb || tb != wtb || db < 0 || db >= r.DBCount || tb < 0 || tb >= r.TBCount {
				t.Fatalf("%dx%d Route(%q) = %d, %d; reference %d, %d", r.DBCount, r.TBCount, u, db, tb, wdb, wtb)
			}
		}
	}
}

// TestRouteDistribution checks that sequential user ids spread evenly: every
// slot gets within 10% of its fair share.
func TestRouteDistribution(t *testing.T) {
	for _, shape := range [][2]int{{2, 4}, {4, 16}, {8, 8}} {
		r, _ := NewRouter(shape[0], shape[1])
		const users = 200_000
		counts := make([]int, r.Shards())
		for i := range users {
			db, tb := r.Route("user" + strconv.Itoa(i))
			counts[db*r.TBCount+tb]++
		}
		fair := float64(users) / float64(r.Shards())
		for slot, n := range counts {
			if d := float64(n) - fair; d > fair/10 || d < -fair/10 {
				t.Errorf("%dx%d slot %d has %d users, fair share %.0f", r.DBCount, r.TBCount, slot, n, fair)
			}
		}
	}
}

func TestTableNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{ShardTable(TableExport, 3), "user_strategy_export_003"},
		{ShardTable(TableExport, 12), "user_strategy_export_012"},
		{ShardDatabase(1), "lottery_01"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestRouteAllocs(t *testing.T) {
	r, _ := NewRouter(2, 4)
	if n := testing.AllocsPerRun(100, func() { r.Route("some-user-id") }); n != 0 {
		t.Errorf("Route allocates %v times", n)
	}
}
