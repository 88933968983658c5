package server

import (
	"context"
	"fmt"

	"github.com/flashlottery/lottery/configs"
	"github.com/flashlottery/lottery/orders"
	"github.com/flashlottery/lottery/wasm"
)

// openModuleStore returns the configured module store: nil for the file
// store (the host makes one on its data dir), or the orders MySQL base
// database's, which every edge of a cluster shares.
func openModuleStore(cfg configs.Config, st ordersStore) (wasm.ModuleStore, error) {
	if cfg.ModuleStore() != "mysql" {
		return nil, nil
	}
	my, ok := st.(*orders.MySQL)
	if !ok {
		return nil, fmt.Errorf("modules: store mysql needs the mysql orders backend")
	}
	return mysqlModules{my.Modules()}, nil
}

// mysqlModules adapts orders.Modules to wasm.ModuleStore (orders does not
// import wasm, which would bring wazero into it).
type mysqlModules struct{ m *orders.Modules }

var _ wasm.ModuleStore = mysqlModules{}

func (a mysqlModules) Generation(ctx context.Context) (int64, error) { return a.m.Generation(ctx) }

func (a mysqlModules) Blob(ctx context.Context, sum string) ([]byte, error) {
	return a.m.Blob(ctx, sum)
}

func (a mysqlModules) Index(ctx context.Context) ([]wasm.StoredModule, int64, error) {
	recs, gen, err := a.m.Index(ctx)
	if err != nil {
		return nil, 0, err
	}
	out := make([]wasm.StoredModule, len(recs))
	for i, r := range recs {
		out[i] = toStored(r)
	}
	return out, gen, nil
}

func (a mysqlModules) Update(ctx context.Context, name string, blob []byte, fn func(*wasm.StoredModule) (wasm.StoredModule, error)) (wasm.StoredModule, int64, error) {
	rec, gen, err := a.m.Update(ctx, name, blob, func(cur *orders.ModuleRecord) (orders.ModuleRecord, error) {
		var c *wasm.StoredModule
		if cur != nil {
			x := toStored(*cur)
			c = &x
		}
		next, err := fn(c)
		return toRecord(next), err
	})
	return toStored(rec), gen, err
}

func toStored(r orders.ModuleRecord) wasm.StoredModule {
	m := wasm.StoredModule{Name: r.Name, Kind: r.Kind, Active: r.Active, Versions: make([]wasm.StoredVersion, len(r.Versions))}
	for i, v := range r.Versions {
		m.Versions[i] = wasm.StoredVersion{SHA256: v.SHA256, Size: v.Size, Uploaded: v.Uploaded}
	}
	return m
}

func toRecord(m wasm.StoredModule) orders.ModuleRecord {
	r := orders.ModuleRecord{Name: m.Name, Kind: m.Kind, Active: m.Active, Versions: make([]orders.ModuleVersion, len(m.Versions))}
	for i, v := range m.Versions {
		r.Versions[i] = orders.ModuleVersion{SHA256: v.SHA256, Size: v.Size, Uploaded: v.Uploaded}
	}
	return r
}
