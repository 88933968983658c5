package orders

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flashlottery/lottery/lottery"
)

// Modules is the module store of a cluster of edges: rule and draw modules
// (their bytes by sha256, each module's kind, kept versions and active
// version) in the MySQL base database, with a cluster-wide generation that
// every change increments. Every edge reads the same records, so they serve
// the same versions; an edge polls Generation (one primary-key read) and
// reads the Index when it moved. The wasm host is its one user (the server
// adapts it to wasm.ModuleStore). It shares the MySQL store's base pool and
// closes with it.
type Modules struct {
	db *sql.DB
}

// ModuleRecord is one module: its name, its kind ("draw" or "rule"), the hex
// sha256 of its active version ("" for none) and its kept versions, newest
// upload first.
type ModuleRecord struct {
	Name     string
	Kind     string
	Active   string
	Versions []ModuleVersion
}

// ModuleVersion is one kept version of a module.
type ModuleVersion struct {
	SHA256   string
	Size     int
	Uploaded time.Time
}

// Modules returns the store's module store, on its base database.
func (s *MySQL) Modules() *Modules { return &Modules{db: s.baseW} }

// Generation returns the cluster's module generation (0 before the first
// change).
func (m *Modules) Generation(ctx context.Context) (int64, error) {
	var gen int64
	err := m.db.QueryRowContext(ctx, `SELECT generation FROM wasm_generation WHERE id = 1`).Scan(&gen)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("orders: module generation: %w", modulesErr(err))
	}
	return gen, nil
}

// Index returns every module by name and the generation they are the state
// of, from one snapshot.
func (m *Modules) Index(ctx context.Context) ([]ModuleRecord, int64, error) {
	recs, gen, err := m.index(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("orders: module index: %w", modulesErr(err))
	}
	return recs, gen, nil
}

func (m *Modules) index(ctx context.Context) ([]ModuleRecord, int64, error) {
	tx, err := m.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return nil, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	var gen int64
	if err := tx.QueryRowContext(ctx, `SELECT generation FROM wasm_generation WHERE id = 1`).Scan(&gen); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT module_name, kind, active_sha256 FROM wasm_module ORDER BY module_name`)
	if err != nil {
		return nil, 0, err
	}
	var recs []ModuleRecord
	for rows.Next() {
		var r ModuleRecord
		if err := rows.Scan(&r.Name, &r.Kind, &r.Active); err != nil {
			rows.Close()
			return nil, 0, err
		}
		recs = append(recs, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, 0, err
	}
	vs, err := versions(ctx, tx, "")
	if err != nil {
		return nil, 0, err
	}
	for i := range recs {
		recs[i].Versions = vs[recs[i].Name]
	}
	return recs, gen, nil
}

// versions reads the kept versions of module name, or of every module when
// name is "", by module and newest first; lock takes them FOR UPDATE.
func versions(ctx context.Context, tx *sql.Tx, name string) (map[string][]ModuleVersion, error) {
	q := `SELECT module_name, sha256, size, uploaded FROM wasm_module_version`
	var args []any
	if name != "" {
		q += ` WHERE module_name = ?`
		args = append(args, name)
	}
	q += ` ORDER BY module_name, position`
	if name != "" {
		q += ` FOR UPDATE`
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]ModuleVersion{}
	for rows.Next() {
		var (
			mod      string
			v        ModuleVersion
			uploaded int64
		)
		if err := rows.Scan(&mod, &v.SHA256, &v.Size, &uploaded); err != nil {
			return nil, err
		}
		v.Uploaded = time.UnixMilli(uploaded).UTC()
		out[mod] = append(out[mod], v)
	}
	return out, rows.Err()
}

// Blob returns the bytes stored under the hex sha256 sum, checked against
// it; an error wrapping lottery.ErrNotFound when there are none.
func (m *Modules) Blob(ctx context.Context, sum string) ([]byte, error) {
	var b []byte
	err := m.db.QueryRowContext(ctx, `SELECT bytes FROM wasm_module_blob WHERE sha256 = ?`, sum).Scan(&b)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("orders: module bytes %s: %w", sum, lottery.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("orders: module bytes %s: %w", sum, modulesErr(err))
	}
	if got := sha256Hex(b); got != sum {
		return nil, fmt.Errorf("orders: module bytes %s are corrupt (their sha256 is %s)", sum, got)
	}
	return b, nil
}

// Update changes module name's record in one transaction and returns the
// new record and generation: it increments the generation first (so every
// change in the cluster waits for the one before it), reads the current
// record (nil for a new module) and gives it to fn, stores blob (if not
// nil) under its sha256, writes fn's record, and deletes the bytes of
// versions the module dropped that no module keeps. An error of fn, or of
// the database, rolls everything back.
func (m *Modules) Update(ctx context.Context, name string, blob []byte, fn func(cur *ModuleRecord) (ModuleRecord, error)) (ModuleRecord, int64, error) {
	rec, gen, err := m.update(ctx, name, blob, fn)
	if err != nil {
		if errors.Is(err, lottery.ErrInvalid) || errors.Is(err, lottery.ErrNotFound) || errors.Is(err, lottery.ErrConflict) {
			return ModuleRecord{}, 0, err
		}
		return ModuleRecord{}, 0, fmt.Errorf("orders: update module %q: %w", name, modulesErr(err))
	}
	return rec, gen, nil
}

func (m *Modules) update(ctx context.Context, name string, blob []byte, fn func(cur *ModuleRecord) (ModuleRecord, error)) (ModuleRecord, int64, error) {
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return ModuleRecord{}, 0, err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `INSERT INTO wasm_generation (id, generation) VALUES (1, 1)
		ON DUPLICATE KEY UPDATE generation = generation + 1`); err != nil {
		return ModuleRecord{}, 0, err
	}
	var gen int64
	if err := tx.QueryRowContext(ctx, `SELECT generation FROM wasm_generation WHERE id = 1`).Scan(&gen); err != nil {
		return ModuleRecord{}, 0, err
	}
	var cur *ModuleRecord
	c := ModuleRecord{Name: name}
	err = tx.QueryRowContext(ctx, `SELECT kind, active_sha256 FROM wasm_module WHERE module_name = ? FOR UPDATE`, name).Scan(&c.Kind, &c.Active)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return ModuleRecord{}, 0, err
	default:
		vs, err := versions(ctx, tx, name)
		if err != nil {
			return ModuleRecord{}, 0, err
		}
		c.Versions = vs[name]
		cur = &c
	}
	next, err := fn(cur)
	if err != nil {
		return ModuleRecord{}, 0, err
	}
	next.Name = name
	now := time.Now().UnixMilli()
	if blob != nil {
		if _, err := tx.ExecContext(ctx, `INSERT INTO wasm_module_blob (sha256, bytes, create_time) VALUES (?, ?, ?)
			ON DUPLICATE KEY UPDATE sha256 = sha256`, sha256Hex(blob), blob, now); err != nil {
			return ModuleRecord{}, 0, err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO wasm_module (module_name, kind, active_sha256, generation, update_time)
		VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE kind = VALUES(kind), active_sha256 = VALUES(active_sha256),
		generation = VALUES(generation), update_time = VALUES(update_time)`, name, next.Kind, next.Active, gen, now); err != nil {
		return ModuleRecord{}, 0, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM wasm_module_version WHERE module_name = ?`, name); err != nil {
		return ModuleRecord{}, 0, err
	}
	if len(next.Versions) > 0 {
		args := make([]any, 0, 5*len(next.Versions))
		for i, v := range next.Versions {
			args = append(args, name, v.SHA256, i, v.Size, v.Uploaded.UnixMilli())
		}
		q := `INSERT INTO wasm_module_version (module_name, sha256, position, size, uploaded) VALUES ` +
			repeatRow(`(?, ?, ?, ?, ?)`, len(next.Versions))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return ModuleRecord{}, 0, err
		}
	}
	if cur != nil {
		for _, v := range cur.Versions {
			if slices.ContainsFunc(next.Versions, func(x ModuleVersion) bool { return x.SHA256 == v.SHA256 }) {
				continue
			}
			// Under the generation row's lock no other change runs, so a
			// version no module keeps now cannot gain a reference before
			// this commits.
			if _, err := tx.ExecContext(ctx, `DELETE FROM wasm_module_blob WHERE sha256 = ?
				AND NOT EXISTS (SELECT 1 FROM wasm_module_version WHERE sha256 = ?)`, v.SHA256, v.SHA256); err != nil {
				return ModuleRecord{}, 0, err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return ModuleRecord{}, 0, err
	}
	next.Versions = slices.Clone(next.Versions)
	return next, gen, nil
}

// modulesErr maps a database error: context errors stay as they are, a
// value the column refuses is ErrInvalid, anything else ErrUnavailable.
func modulesErr(err error) error {
	if mapped := mysqlMapErr(err); errors.Is(mapped, lottery.ErrInvalid) {
		return mapped
	}
	return unavailable(err)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
