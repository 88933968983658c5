// Package loadgen is the load generator behind `lottery bench` and `make
// bench`: it pre-builds every request body, drives a target with a fixed
// number of connections through one fasthttp client, records each latency,
// and reports req/s, p50/p90/p99 and counts by status and draw outcome. It
// also verifies an activity afterwards through the admin audit endpoint:
// accepted draws within the activity stock, prizes within each award's
// count, every prize with exactly one order and one delivered invoice.
//
// Design decisions: requests are built before the clock starts and the
// response is not JSON-decoded (the outcome is found by a byte search), so
// the generator spends its core on sending, and a ratio against a bare
// handler measured with the same generator measures the server.
package loadgen
