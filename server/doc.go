// Package server is the fasthttp edge: routes and handlers, admin auth and
// body limits, the one table that maps domain errors to HTTP statuses, the
// Prometheus metrics, and the Server lifecycle (New, Start, Shutdown) that
// builds every adapter from a configs.Config and owns every goroutine.
//
// Design decisions:
//
//   - The server composes; it holds no business rules. Handlers decode and
//     validate input, call lottery.Service, and encode the answer.
//   - Errors reach HTTP in one place (errors.go): sentinels from lottery map
//     to a status, a stable code and, for draws, an outcome.
//   - Every background goroutine (outbox relay, invoice consumer, analytics
//     flusher, jobs and the module watcher) is started by Start and stopped by Shutdown in order:
//     stop taking requests, stop the jobs, drain the relay, stop the
//     consumer, flush analytics, then close the stores and the broker.
//   - A cluster of edges shares modules and activities through MySQL. The
//     module watcher (one of the jobs) polls the module store every
//     modules.pollEvery and loads what another edge changed (wasm.Host.Watch;
//     modulestore.go adapts orders.Modules to wasm.ModuleStore); the catalog
//     cache lives orders.catalogTTL (and one catalog read: at most twice it). A module version that does not load on
//     this edge keeps the previous one serving: /readyz answers 200 with
//     status "degraded" and the failing modules, not 503, because every
//     edge runs the same checks and a 503 everywhere would take a version
//     none can load out on the whole sale; lottery_module_sync_ok and
//     lottery_module_failing tell monitoring.
//   - Bodies are bounded twice: by fasthttp (MaxBodyBytes, the connection is
//     refused beyond it) and per route (a draw body above MaxDrawBodyBytes is
//     a 413 with a JSON error), so nothing is parsed that cannot be valid.
//   - Nothing a handler sees is kept after it returns (fasthttp's rule): the
//     user id is copied into a string before it reaches the domain, and the
//     domain gets the server's context, never the *fasthttp.RequestCtx (a
//     context derived from it would outlive the request; the race detector
//     caught exactly that).
package server
