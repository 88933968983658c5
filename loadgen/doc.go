// Package loadgen is the load generator behind `lottery bench` and the
// benchmark suite behind `lottery benchsuite` (`make bench`). Run
// pre-builds every request body, drives a target with a fixed number of
// connections through one fasthttp client, records each latency, and
// reports req/s, p50/p90/p99 and counts by status and draw outcome. Verify
// checks an activity afterwards through the admin audit endpoint: accepted
// draws within the activity stock, prizes within each award's count, every
// prize with exactly one order and one delivered invoice.
//
// RunSuite measures the bare handler (ServeBare), then starts each edge
// profile (embedded; Redis stock; MariaDB orders; native against Wasm rule
// draws and a hot reload under load) as a fresh `lottery serve` pinned to
// the server core, measures and verifies its scenarios, measures the bare
// handler again, and checks the targets; WriteMarkdown renders the result
// for BENCHMARKS.md.
//
// Design decisions: requests are built before the clock starts and the
// response is not JSON-decoded (the outcome is found by a byte search), so
// the generator spends its core on sending, and a ratio against a bare
// handler measured with the same generator measures the server. Paired
// scenarios alternate their variants in short rounds, each going first in
// every other round, so drift on a shared machine falls on both.
package loadgen
