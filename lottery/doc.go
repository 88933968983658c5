// Package lottery is the domain core of the flash-sale lottery edge: activities
// and their state machine, strategies and awards, the partake template (check,
// reserve, take), the draw process (partake, draw, order, invoice, event), the
// ports every adapter implements, the sentinel errors, and id generation.
//
// Design decisions:
//
//   - Standard library only. Every adapter (stock, orders, invoice, analytics,
//     wasm) imports this package and implements one of its ports; nothing here
//     imports them. That keeps the flow testable with the embedded adapters and
//     lets production backends be swapped in without touching the process.
//   - Ports are small and shaped by what the draw process calls (Stock, Orders,
//     Catalog, Publisher, Events, Drawer). Administrative calls that the draw
//     path never makes live on the adapters' concrete types.
//   - Stock is reserved before anything is written and given back when a later
//     step fails, so the stock port is the single authority on "never oversold".
//     A take that was recorded but whose draw failed stays unused; the user's
//     next draw reuses it instead of taking new stock (the seed's "reuse the
//     unused take").
//   - A draw is reproducible: the random seed is chosen by the caller (the
//     Service uses math/rand/v2), passed to the Drawer and stored on the order.
//     The native alias-table drawer is exact to one part per million and O(1).
//   - Errors: a few documented sentinels (ErrSoldOut, ErrLimitReached, ...).
//     Adapters translate driver errors into them; the server maps them to HTTP
//     statuses in one place.
package lottery
