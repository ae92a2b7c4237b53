# agentgate — make help lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

GO       ?= go
BIN      ?= bin/agentgate
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# The PostgreSQL server the test suite uses (each run creates and drops its own schemas).
export AGENTGATE_TEST_POSTGRES ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export AGENTGATE_TEST_REDIS ?= redis://127.0.0.1:6379/15

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

.PHONY: build
build: ## build bin/agentgate
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

.PHONY: run
run: ## run the gateway on 127.0.0.1:8080 with embedded SQLite in ./data
	AGENTGATE_LOG_FORMAT=$${AGENTGATE_LOG_FORMAT:-text} $(GO) run -ldflags '$(LDFLAGS)' . serve

.PHONY: deps
deps: ## install and start what the tests need (Go modules, PostgreSQL, Redis, npm packages, chromium)
	@bash .ci/deps

.PHONY: test
test: deps ## run every test (race detector on), against SQLite and PostgreSQL
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: test/race
test/race: ## run the Go tests with the race detector (no dependency set-up)
	$(GO) test -race -count=1 -timeout 20m ./...

.PHONY: test/short
test/short: ## quick tests: SQLite only, no browser or Node clients
	AGENTGATE_TEST_POSTGRES= $(GO) test -short -count=1 ./...

.PHONY: fuzz
fuzz: ## run each fuzz test for a short while
	$(GO) test ./stream -run '^$$' -fuzz FuzzWriter -fuzztime 20s
	$(GO) test ./stream -run '^$$' -fuzz FuzzAggregator -fuzztime 10s
	$(GO) test ./server -run '^$$' -fuzz FuzzExtractInput -fuzztime 10s

.PHONY: lint
lint: ## gofmt, go vet and the dependency-direction test
	@test -z "$$(gofmt -l .)" || (gofmt -l . && echo 'gofmt: files above need formatting' && exit 1)
	$(GO) vet ./...
	$(GO) test -count=1 -run TestDependencyDirection .

.PHONY: bench
bench: ## quick benchmarks (under 3 minutes; builds its own gateway binary); results in bench/out/
	$(GO) run ./bench/cmd/bench -quick

.PHONY: bench/full
bench/full: ## full benchmark scenarios on SQLite and PostgreSQL
	$(GO) run ./bench/cmd/bench

.PHONY: tidy
tidy: ## go mod tidy
	$(GO) mod tidy
