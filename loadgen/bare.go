package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/valyala/fasthttp"
)

// bareBody is what the bare handler answers: the size and shape of a lose.
var bareBody = []byte(`{"outcome":"lose","activityId":100001,"takeId":"1","module":"bare","seed":"1"}`)

// BareHandler is the benchmark baseline: a fasthttp handler that answers
// every request with a fixed JSON body and does nothing else.
func BareHandler(ctx *fasthttp.RequestCtx) {
	ctx.SetContentType("application/json")
	ctx.SetBody(bareBody)
}

// ServeBare serves BareHandler on addr until ctx ends.
func ServeBare(ctx context.Context, addr string, logw io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bare: listen: %w", err)
	}
	srv := &fasthttp.Server{Handler: BareHandler, NoDefaultDate: true, NoDefaultContentType: true}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }() // owned: stopped below
	fmt.Fprintf(logw, "bare handler on %s\n", ln.Addr())
	select {
	case <-ctx.Done():
		return srv.Shutdown()
	case err := <-errc:
		return err
	}
}
