package loadgen

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/flashlottery/lottery/rules"
)

// profile is one edge configuration and the scenarios measured on it.
type profile struct {
	name  string // for --profiles
	label string // its name in the report
	desc  string
	// config is the YAML of the edge (over the embedded defaults).
	config string
	// skip says why the profile cannot run here; empty when it can.
	skip      string
	scenarios []scenario
	// cleanup removes what the profile left on the services; each returns
	// what it could not remove.
	cleanup []func(context.Context) string
}

// scenario is a measurement on a running edge; it returns one row per
// variant it measured, each named with the scenario's name as a prefix.
type scenario struct {
	name string
	run  func(ctx context.Context, cfg SuiteConfig, e *edge, s *Suite) ([]Scenario, error)
}

var profileNames = []string{"embedded", "embedded-1x1", "redis", "mariadb", "mariadb-1x1", "modules"}

// ProfileNames returns the names of the edge profiles, in the order a run
// measures them.
func ProfileNames() []string { return slices.Clone(profileNames) }

// Row names the targets refer to.
const (
	rowEmbeddedFlash  = "embedded: flash sale"
	rowEmbeddedAllWin = "embedded: all win"
	rowEmbedded1x1    = "embedded, 1 x 1: all win"
	rowRedisFlash     = "Redis stock: flash sale"
	rowMariaDBAllWin  = "Redis stock + MariaDB orders: all win"
	rowMariaDB1x1     = "Redis stock + MariaDB orders, 1 x 1: all win"
	rowRuleFlash      = "rule draw, flash sale"
	rowRuleAllWin     = "rule draw, all win"
	rowReload         = "hot reload"
	suffixNative      = ": native" // the rows of a paired scenario
	suffixWasm        = ": Wasm"
)

// profiles lists the edge profiles of run, the services they need taken
// from cfg.Getenv.
func profiles(cfg SuiteConfig, run string) []profile {
	redisAddr, mysql := cfg.Getenv(envRedis), cfg.Getenv(envMySQL)
	missing := func(vars ...string) string {
		for _, v := range vars {
			if cfg.Getenv(v) == "" {
				return v + " is not set (`make bench` starts the services; by hand: scripts/services.sh start && . .services/env)"
			}
		}
		return ""
	}
	ps := []profile{
		{
			name: "embedded", label: "embedded",
			desc:      "memory stock, SQLite orders (2 x 4 shards: two databases, each with one take and one count table and four order tables, as the seed), embedded Kafka-protocol broker and analytics, all in the edge's process",
			scenarios: []scenario{flashSale(rowEmbeddedFlash), allWin(rowEmbeddedAllWin)},
		},
		{
			name: "embedded-1x1", label: "embedded, 1 x 1",
			desc:      "embedded as above with orders in one database and one order table (orders.dbCount 1, tbCount 1): one SQLite writer takes every draw, in batches twice the size",
			config:    "orders: {dbCount: 1, tbCount: 1}\n",
			scenarios: []scenario{allWin(rowEmbedded1x1)},
		},
		{
			name: "redis", label: "Redis stock",
			desc:      "Redis stock (lua mode, batched) under a fresh key prefix, SQLite orders, embedded broker and analytics",
			skip:      missing(envRedis),
			scenarios: []scenario{flashSale(rowRedisFlash)},
		},
		{
			name: "mariadb", label: "Redis stock + MariaDB orders",
			desc:      "Redis stock as above, MariaDB orders (2 x 4 shards) on fresh databases, embedded broker and analytics",
			skip:      missing(envRedis, envMySQL),
			scenarios: []scenario{allWin(rowMariaDBAllWin)},
		},
		{
			name: "mariadb-1x1", label: "Redis stock + MariaDB orders, 1 x 1",
			desc:      "as above with orders in one database and one order table (orders.dbCount 1, tbCount 1), the layout for one MariaDB server: the seed's 2 x 4 splits the draws over two group commits and each one's orders into up to four INSERTs, and the server's cost is mostly per statement, not per row",
			skip:      missing(envRedis, envMySQL),
			scenarios: []scenario{allWin(rowMariaDB1x1)},
		},
		{
			name: "modules", label: "modules",
			desc: "embedded as above; draws through POST /api/v1/draw/rule and the seed's gender-then-age tree, native (reference evaluator, strategies with no draw module) against Wasm (compiled tree, built-in draw modules); then hot reload",
			scenarios: []scenario{
				ruleDraw(rowRuleFlash, false), ruleDraw(rowRuleAllWin, true), hotReload(rowReload),
			},
		},
	}
	byName := func(name string) *profile {
		for i := range ps {
			if ps[i].name == name {
				return &ps[i]
			}
		}
		panic("loadgen: no profile " + name) // a broken invariant: the names are above
	}
	if redisAddr != "" {
		for _, name := range []string{"redis", "mariadb", "mariadb-1x1"} {
			prefix := "lottery-bench-" + run + "-" + name + ":"
			p := byName(name)
			p.config += redisYAML(redisAddr, prefix)
			p.desc += " (Redis " + redisAddr + ", key prefix " + prefix + ")"
			p.cleanup = append(p.cleanup, func(ctx context.Context) string { return deleteRedisKeys(ctx, redisAddr, prefix) })
		}
	}
	if mysql != "" {
		d, dsnErr := parseMySQLDSN(mysql)
		for _, l := range []struct {
			name             string
			dbCount, tbCount int
		}{{"mariadb", 2, 4}, {"mariadb-1x1", 1, 1}} {
			p := byName(l.name)
			if dsnErr != nil {
				p.skip = dsnErr.Error()
				continue
			}
			yaml, dbs := mysqlYAML(d, "lottery_bench_"+run+"_"+strings.ReplaceAll(l.name, "-", "_"), l.dbCount, l.tbCount)
			p.config += yaml
			p.desc += " (databases " + dbs[0] + "*)"
			p.cleanup = append(p.cleanup, func(ctx context.Context) string { return dropDatabases(ctx, d, dbs) })
		}
	}
	return ps
}

// flashSale measures draws of one activity whose stock is 1% of the
// requests: most draws answer sold_out.
func flashSale(name string) scenario {
	return scenario{name: name, run: func(ctx context.Context, cfg SuiteConfig, e *edge, _ *Suite) ([]Scenario, error) {
		stock := int64(max(cfg.Requests/100, 1))
		a := activity{id: 1, stock: stock, awards: stock, mode: 1, rate: 0.5}
		return e.measure(ctx, cfg, name, fmt.Sprintf("stock %d (1%% of requests), single-item 50%%: most draws answer sold_out", stock), a, cfg.Requests)
	}}
}

// allWin measures draws that all win: every one takes, wins, writes a take
// and an order, publishes and delivers an invoice.
func allWin(name string) scenario {
	return scenario{name: name, run: func(ctx context.Context, cfg SuiteConfig, e *edge, _ *Suite) ([]Scenario, error) {
		n := int64(cfg.AllWinRequests)
		a := activity{id: 2, stock: 2 * n, awards: 2 * n, mode: 2, rate: 1}
		return e.measure(ctx, cfg, name, "stock above the requests, total-rate: every draw takes, wins, writes a take and an order, publishes and delivers an invoice", a, cfg.AllWinRequests)
	}}
}

// measure deploys a, drives requests draws of it through /api/v1/draw,
// verifies it, and notes the Redis round trips per draw when the edge
// reports them.
func (e *edge) measure(ctx context.Context, cfg SuiteConfig, name, comment string, a activity, requests int) ([]Scenario, error) {
	if err := e.deploy(a); err != nil {
		return nil, err
	}
	before, err := e.metrics()
	if err != nil {
		return nil, err
	}
	res, err := Run(ctx, Config{URL: e.base, Requests: requests, Concurrency: cfg.Concurrency, Users: requests, UserPrefix: "s" + strconv.FormatInt(a.id, 10) + "-", ActivityID: a.id})
	if err != nil {
		return nil, err
	}
	after, err := e.metrics()
	if err != nil {
		return nil, err
	}
	rep, err := e.verify(ctx, a.id)
	if err != nil {
		return nil, err
	}
	sc := Scenario{Name: name, Result: res, Verify: rep, Comment: comment}
	if n := redisNote(before, after, res.Requests); n != "" {
		sc.Notes = append(sc.Notes, n)
	}
	return []Scenario{sc}, nil
}

// redisNote describes the Redis stock's work per draw between two scrapes,
// or "" when the edge has no Redis stock.
func redisNote(before, after Metrics, draws int) string {
	const rt, res, batches = "lottery_stock_redis_roundtrips_total", "lottery_stock_redis_reservations_total", "lottery_stock_redis_batches_total"
	if !after.Has(rt) || draws == 0 {
		return ""
	}
	d := func(name string) float64 { return after.Sum(name) - before.Sum(name) }
	per := func(v float64) float64 { return v / float64(draws) }
	return fmt.Sprintf("Redis round trips per draw %.3f (%.0f round trips, %.0f reservations in %.0f batches, for %d draws; from lottery_stock_redis_* on /metrics before and after)",
		per(d(rt)), d(rt), d(res), d(batches), draws)
}

// benchTree is the seed's example tree (rules/testdata/seed_tree.yaml:
// gender, then age under or from 25) with its four leaves on the given
// activities.
func benchTree(id string, leaves [4]int64) *rules.Tree {
	leaf := func(node string, v int64) rules.Node { return rules.Node{ID: node, Type: rules.Leaf, Value: v} }
	line := func(from, to string, lt rules.LimitType, v string) rules.Line {
		return rules.Line{From: from, To: to, LimitType: lt, LimitValue: rules.Values{v}}
	}
	return &rules.Tree{
		ID: id, Name: "bench: the seed's gender-then-age tree", Root: "1",
		Nodes: []rules.Node{
			{ID: "1", Type: rules.Branch, RuleKey: "userGender", Default: "0"},
			{ID: "11", Type: rules.Branch, RuleKey: "userAge", Default: "0"},
			{ID: "12", Type: rules.Branch, RuleKey: "userAge", Default: "0"},
			leaf("111", leaves[0]), leaf("112", leaves[1]), leaf("121", leaves[2]), leaf("122", leaves[3]),
			leaf("0", 0),
		},
		Lines: []rules.Line{
			line("1", "11", rules.LimitEqual, "man"), line("1", "12", rules.LimitEqual, "woman"),
			line("11", "111", rules.LimitLess, "25"), line("11", "112", rules.LimitGreaterEqual, "25"),
			line("12", "121", rules.LimitLess, "25"), line("12", "122", rules.LimitGreaterEqual, "25"),
		},
	}
}

// ruleBody returns the bodies of rule draws over tree: users take the four
// paths of benchTree in turn.
func ruleBody(tree string) func(user string, i int) []byte {
	attrs := [4]string{
		`{"userGender":"man","userAge":20}`, `{"userGender":"man","userAge":30}`,
		`{"userGender":"woman","userAge":20}`, `{"userGender":"woman","userAge":30}`,
	}
	return func(user string, i int) []byte {
		return []byte(`{"userId":"` + user + `","treeId":"` + tree + `","attributes":` + attrs[i%4] + `}`)
	}
}

// ruleVariant is one side of a paired rule-draw scenario.
type ruleVariant struct {
	label, suffix, engine, module string
	ids                           [4]int64
}

// ruleDraw compares, through the same endpoint (/api/v1/draw/rule), the
// native algorithms (the tree served by the reference evaluator, strategies
// without a draw module) with Wasm (the tree compiled, strategies naming
// the built-in draw module). The variants alternate for cfg.Rounds short
// rounds, in turn first, so drift in the machine or the store falls on
// both; each row merges its variant's rounds, and the Wasm row keeps its
// ratio to native in each round, whose median the target takes (a shared
// machine's bursts of other work last seconds and would otherwise decide
// the comparison). A flash sale sells out in the first round of each
// variant.
func ruleDraw(name string, allWin bool) scenario {
	return scenario{name: name, run: func(ctx context.Context, cfg SuiteConfig, e *edge, _ *Suite) ([]Scenario, error) {
		requests, mode, rate, moduleName, base := cfg.Requests, 1, 0.5, "builtin/draw-single", int64(100)
		comment := "flash sale as above over the tree's four activities (stock 1%% of the variant's requests in all), alternating native and Wasm in %d rounds (each first in every other); after the first round of each, draws answer sold_out"
		if allWin {
			requests, mode, rate, moduleName, base = cfg.AllWinRequests, 2, 1, "builtin/draw-total", 200
			comment = "all win as above over the tree's four activities, alternating native and Wasm in %d rounds (each first in every other)"
		}
		variants := []ruleVariant{
			{label: "native", suffix: suffixNative, engine: "native", ids: [4]int64{base + 1, base + 2, base + 3, base + 4}},
			{label: "Wasm", suffix: suffixWasm, engine: "wasm", module: moduleName, ids: [4]int64{base + 11, base + 12, base + 13, base + 14}},
		}
		stock := int64(2 * requests / 4) // per activity, four per variant
		if !allWin {
			stock = int64(max(requests/100/4, 1))
		}
		for _, v := range variants {
			for _, id := range v.ids {
				if err := e.deploy(activity{id: id, stock: stock, awards: stock, mode: mode, rate: rate, module: v.module}); err != nil {
					return nil, err
				}
			}
			if err := e.registerTree(benchTree(treeID(base, v.label), v.ids), v.engine); err != nil {
				return nil, err
			}
		}
		perRound := max(requests/cfg.Rounds, 1)
		results := make([][]Result, len(variants))
		for r := range cfg.Rounds {
			for k := range variants {
				vi := (k + r) % len(variants) // the other one first in odd rounds
				v := variants[vi]
				res, err := Run(ctx, Config{URL: e.base, Path: "/api/v1/draw/rule", Requests: perRound, Concurrency: cfg.Concurrency, Users: perRound,
					UserPrefix: fmt.Sprintf("r%d-%s-%d-", base, v.engine, r), Body: ruleBody(treeID(base, v.label))})
				if err != nil {
					return nil, err
				}
				results[vi] = append(results[vi], res)
			}
		}
		var rows []Scenario
		var ratios []float64
		for r := range results[1] {
			ratios = append(ratios, results[1][r].RPS/results[0][r].RPS)
		}
		for i, v := range variants {
			rep, err := e.verify(ctx, v.ids[:]...)
			if err != nil {
				return rows, err
			}
			drawn := "native alias drawer"
			if v.module != "" {
				drawn = v.module
			}
			sc := Scenario{Name: name + v.suffix, Result: Merge(results[i]...), Verify: rep,
				Comment: fmt.Sprintf(comment, cfg.Rounds) + fmt.Sprintf("; tree engine %s, draws by %s", v.engine, drawn)}
			if i == 1 {
				sc.RoundRatios = ratios
				sc.Notes = append(sc.Notes, "req/s over native's in each round: "+fmtRatios(ratios))
			}
			rows = append(rows, sc)
		}
		return rows, nil
	}}
}

func fmtRatios(rs []float64) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%.2f", r)
	}
	return b.String()
}

func treeID(base int64, label string) string {
	return "bench-" + strconv.FormatInt(base, 10) + "-" + label
}
