# The two commands of the quickstart are `make run` and `make test`. Both
# find or start PostgreSQL and Redis first (.ci/services.sh).
SERVICES = eval "$$(.ci/services.sh)" &&
STATICCHECK = honnef.co/go/tools/cmd/staticcheck@v0.8.2
GO_TEST = go test -race -count=1

.PHONY: run test test-go screenshots ui lint bench bench-go bench-http bench-fleet fuzz build services

run: ## server with demo data on port 3000, every interface (http://localhost:3000 here)
	$(SERVICES) go run ./cmd/analyticsd serve --demo

test: ## every test: Go (race) and the dashboard's (Vitest, browser), against real PostgreSQL and Redis; fails if the run leaves a key, a process or a changed file (.ci/test.sh)
	.ci/test.sh

screenshots: ## run the browser tests and keep their screenshots in docs/ (make test throws them away)
	$(SERVICES) SCREENSHOT_DIR=docs .ci/ui.sh test

test-go: ## only the Go tests
	$(SERVICES) $(GO_TEST) ./...

ui: ## rebuild the embedded dashboard (ui/dist) from ui/web; commit ui/dist with its sources
	cd ui/web && npm ci --no-audit --no-fund && npm run build

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	go vet ./...
	go run $(STATICCHECK) ./...

BENCH_EVENTS ?= 10000000
BENCH_DB = BENCH_DATABASE_URL="$${BENCH_DATABASE_URL:-$${DATABASE_URL%%/analytics?*}/analytics_bench?sslmode=disable}"
bench: ## plain SQL vs rollups, ingest cost, worker lag (BENCH_EVENTS=100000000 for 100M); see docs/benchmarks.md
	$(SERVICES) $(BENCH_DB) go run ./cmd/analyticsd bench --events $(BENCH_EVENTS) $(BENCH_FLAGS)

bench-go: ## the go test benchmarks (summary through the service, cold and cached)
	$(SERVICES) $(BENCH_DB) BENCH_REDIS_URL="$${BENCH_REDIS_URL:-$$REDIS_URL}" BENCH_EVENTS=$(BENCH_EVENTS) \
		go test -run '^$$' -bench . -benchmem -count 1 -timeout 60m ./...

bench-http: ## the cached summary through the server vs a bare net/http handler, wrk in one run (needs wrk)
	@command -v wrk >/dev/null || { echo "bench-http needs wrk: apt-get install wrk" >&2; exit 1; }
	$(SERVICES) go run ./cmd/analyticsd bench-http $(BENCH_FLAGS)

FLEET_FLAGS ?= --instances 6 --clients 100000 --ranges 10 --duration 60s
bench-fleet: ## N instances + load generators on one PostgreSQL/Redis (FLEET_FLAGS); see docs/benchmarks.md
	go build -o bin/analyticsd ./cmd/analyticsd && go build -o bin/analytics-loadgen ./cmd/analytics-loadgen
	$(SERVICES) bin/analytics-loadgen fleet --server bin/analyticsd $(FLEET_FLAGS)

FUZZTIME ?= 30s
fuzz: ## every fuzz target for FUZZTIME each
	go test -run '^$$' -fuzz FuzzParseRange -fuzztime $(FUZZTIME) ./summary
	go test -run '^$$' -fuzz FuzzBuckets -fuzztime $(FUZZTIME) ./summary
	go test -run '^$$' -fuzz FuzzDecompose -fuzztime $(FUZZTIME) ./storage
	go test -run '^$$' -fuzz FuzzParseTypes -fuzztime $(FUZZTIME) ./storage
	go test -run '^$$' -fuzz FuzzParseDuration -fuzztime $(FUZZTIME) ./cmd/analyticsd
	go test -run '^$$' -fuzz FuzzParseWrk -fuzztime $(FUZZTIME) ./cmd/analyticsd
	go test -run '^$$' -fuzz FuzzParseSources -fuzztime $(FUZZTIME) ./cmd/analytics-loadgen
	go test -run '^$$' -fuzz FuzzUnmarshalSnapshot -fuzztime $(FUZZTIME) ./internal/redis
	go test -run '^$$' -fuzz FuzzDecode -fuzztime $(FUZZTIME) ./internal/ingest
	go test -run '^$$' -fuzz FuzzUnquote -fuzztime $(FUZZTIME) ./internal/ingest
	go test -run '^$$' -fuzz FuzzFormatInstant -fuzztime $(FUZZTIME) ./summary
	go test -run '^$$' -fuzz FuzzAcceptsEventStream -fuzztime $(FUZZTIME) ./internal/api

build:
	CGO_ENABLED=0 go build -trimpath -o bin/analyticsd ./cmd/analyticsd

services: ## print the exports for the services
	@.ci/services.sh
