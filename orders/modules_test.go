package orders_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/flashlottery/lottery/lottery"
	"github.com/flashlottery/lottery/orders"
)

// TestMySQLModules covers what the module store contract (run in server,
// through the wasm adapter) cannot see: two stores on one database (two
// edges) see each other's changes and generation, bytes that no longer hash
// to their key are refused, and the tables come from Migrate.
func TestMySQLModules(t *testing.T) {
	cfg := orders.MySQLTestConfig(t, seedRouter(t))
	ctx := t.Context()
	a := openMySQL(t, cfg)
	defer a.Close()
	b := openMySQL(t, cfg)
	defer b.Close()
	ma, mb := a.Modules(), b.Modules()

	bin := []byte("\x00asm a module")
	s := sha256.Sum256(bin)
	sum := hex.EncodeToString(s[:])
	up := time.UnixMilli(time.Now().UnixMilli()).UTC()
	rec, gen, err := ma.Update(ctx, "team/draw", bin, func(cur *orders.ModuleRecord) (orders.ModuleRecord, error) {
		return orders.ModuleRecord{Kind: "draw", Active: sum, Versions: []orders.ModuleVersion{{SHA256: sum, Size: len(bin), Uploaded: up}}}, nil
	})
	if err != nil || gen != 1 || rec.Name != "team/draw" {
		t.Fatalf("Update: %+v, %d, %v", rec, gen, err)
	}
	if g, err := mb.Generation(ctx); err != nil || g != 1 {
		t.Fatalf("the other store's Generation: %d, %v", g, err)
	}
	recs, g, err := mb.Index(ctx)
	if err != nil || g != 1 || len(recs) != 1 || recs[0].Active != sum || len(recs[0].Versions) != 1 || recs[0].Versions[0] != (orders.ModuleVersion{SHA256: sum, Size: len(bin), Uploaded: up}) {
		t.Fatalf("the other store's Index: %+v, %d, %v", recs, g, err)
	}
	if got, err := mb.Blob(ctx, sum); err != nil || string(got) != string(bin) {
		t.Fatalf("the other store's Blob: %q, %v", got, err)
	}
	// A kind change from b is refused by its fn; nothing changes.
	if _, _, err := mb.Update(ctx, "team/draw", nil, func(cur *orders.ModuleRecord) (orders.ModuleRecord, error) {
		if cur == nil || cur.Kind != "draw" {
			t.Errorf("b's current record: %+v", cur)
		}
		return orders.ModuleRecord{}, lottery.ErrInvalid
	}); !errors.Is(err, lottery.ErrInvalid) {
		t.Fatalf("refused Update: %v", err)
	}
	if g, _ := ma.Generation(ctx); g != 1 {
		t.Fatalf("generation after a refused update: %d", g)
	}

	db, err := sql.Open("mysql", cfg.Base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `UPDATE wasm_module_blob SET bytes = 'garbage' WHERE sha256 = ?`, sum); err != nil {
		t.Fatal(err)
	}
	if _, err := ma.Blob(ctx, sum); err == nil || errors.Is(err, lottery.ErrNotFound) {
		t.Fatalf("corrupt bytes: %v, want an error naming the corruption", err)
	}
	if _, err := ma.Blob(ctx, "00"); !errors.Is(err, lottery.ErrNotFound) {
		t.Fatalf("missing bytes: %v", err)
	}
}
