# The two commands of the README are `make run` and `make test`.
GO       ?= go
BIN      := bin/lottery
PKGS     := ./...
TESTFLAGS ?= -race -timeout 20m

.PHONY: run test test-short bench build check fuzz clean services services-stop wasm

run: ## start the edge on embedded defaults with the demo activity
	$(GO) run ./cmd/lottery serve

build:
	$(GO) build -o $(BIN) ./cmd/lottery

test: services ## vet, format check, and every test with the race detector, against the real servers too
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet $(PKGS)
	. .services/env && $(GO) test $(TESTFLAGS) $(PKGS)

services: ## install (as root, from Debian) and start Redis, MariaDB, ClickHouse and the broker on loopback
	scripts/services.sh start

services-stop:
	scripts/services.sh stop

test-short:
	$(GO) test -short $(PKGS)

bench: build services ## bare fasthttp vs the draw endpoint of each edge profile (embedded, Redis, MariaDB, Wasm), pinned cores; writes BENCHMARKS.md
	. .services/env && taskset -c 1 $(BIN) benchsuite --bin $(BIN) --out BENCHMARKS.md
	$(GO) test -run XXX -bench . -benchmem ./lottery ./stock ./orders ./analytics

FUZZTIME ?= 10s
fuzz: ## a short run of every fuzz target (FUZZTIME each, default 10s)
	$(GO) test -run XXX -fuzz '^FuzzParseDraw$$' -fuzztime $(FUZZTIME) ./server
	$(GO) test -run XXX -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./configs
	$(GO) test -run XXX -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./rules
	$(GO) test -run XXX -fuzz '^FuzzCompiledMatchesEvaluate$$' -fuzztime $(FUZZTIME) ./rules
	$(GO) test -run XXX -fuzz '^FuzzInstrument$$' -fuzztime $(FUZZTIME) ./wasm
	$(GO) test -run XXX -fuzz '^FuzzDrawInput$$' -fuzztime $(FUZZTIME) ./sdk/abi
	$(GO) test -run XXX -fuzz '^FuzzRuleInput$$' -fuzztime $(FUZZTIME) ./sdk/abi
	$(GO) test -run XXX -fuzz '^FuzzExpr$$' -fuzztime $(FUZZTIME) ./sdk/wasmgen
	$(GO) test -run XXX -fuzz '^FuzzLEB128$$' -fuzztime $(FUZZTIME) ./sdk/wasmgen
	$(GO) test -run XXX -fuzz '^FuzzReplay$$' -fuzztime $(FUZZTIME) ./analytics
	$(GO) test -run XXX -fuzz '^FuzzUnmarshalInvoice$$' -fuzztime $(FUZZTIME) ./invoice

wasm: ## build the SDK examples: Go guests into bin/wasm, the AssemblyScript one into its committed testdata
	mkdir -p bin/wasm
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/wasm/happyhour.wasm ./sdk/examples/happyhour
	GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -o bin/wasm/segment.wasm ./sdk/examples/segment
	cd sdk/assemblyscript && npm ci --no-audit --no-fund && npm run build

check: test ## what CI checks, plus a tidy module
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

clean:
	rm -rf bin
