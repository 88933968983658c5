// Package server is the fasthttp edge: routes and handlers, admin auth and
// body limits, the one table that maps domain errors to HTTP statuses, the
// Prometheus metrics, and the Server lifecycle (New, Start, Shutdown) that
// builds every adapter from a configs.Config and owns every goroutine.
//
// Design decisions:
//
//   - The server composes; it holds no business rules. Handlers decode and
//     validate input, call lottery.Service, and encode the answer.
//   - Errors reach HTTP in one place (errors.go): sentinels from lottery
//     (and wasm's module-unavailable ones) map to a status, a stable code
//     and, for draws, an outcome.
//   - Every background goroutine (outbox relay, invoice consumer, analytics
//     flusher, jobs, the module watcher among them) is started by Start and
//     stopped by Shutdown in order: stop taking requests, stop the jobs,
//     drain the relay, stop the consumer, flush analytics, then close the
//     stores and the broker.
//   - A cluster of edges shares modules and activities through MySQL. The
//     module watcher polls the module store every modules.pollEvery and
//     loads what another edge changed (wasm.Host.Watch; modulestore.go
//     adapts orders.Modules to wasm.ModuleStore); an activity cached by an
//     edge is at most orders.catalogTTL and one catalog read old (at most
//     twice the TTL). A module version that does not load on this edge
//     keeps the previous one serving: /readyz answers 200 with status
//     "degraded" and the failing modules, not 503, because every edge runs
//     the same checks and a 503 everywhere would take a version none can
//     load out on the whole sale; lottery_module_sync_ok and
//     lottery_module_failing tell monitoring.
//   - Bodies are bounded twice: by fasthttp (beyond MaxBodyBytes no handler
//     runs: a 413 with a JSON error, and the connection is closed) and, for
//     POST /api/v1/draw, by MaxDrawBodyBytes (a 413 with a JSON error), so
//     nothing is parsed that cannot be valid. A rule draw's body is bounded
//     by MaxBodyBytes only.
//   - Nothing a handler sees is kept after it returns (fasthttp's rule): the
//     user id is copied into a string before it reaches the domain, and the
//     domain gets the server's context, never the *fasthttp.RequestCtx (a
//     context derived from it would outlive the request; the race detector
//     caught exactly that).
package server
