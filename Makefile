# bulkhead — `make help` lists the targets.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -s -w -X github.com/bulkhead-dev/bulkhead/cli.version=$(VERSION) -X github.com/bulkhead-dev/bulkhead/cli.commit=$(COMMIT)
# Tests that need root, FUSE, namespaces or MinIO skip locally when those are
# missing; CI sets BULKHEAD_TEST_NO_SKIP=1 so they fail instead.
TEST_TIMEOUT ?= 45m

.PHONY: help build test test-short lint bench bench-state

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build ./bulkhead, statically linked
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bulkhead .

test: ## run every test (the README's test command)
	CGO_ENABLED=0 $(GO) test -timeout $(TEST_TIMEOUT) -count=1 ./...

test-short: ## unit tests only
	$(GO) test -short -count=1 ./...

lint: ## gofmt, go vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...

bench-state: ## state benchmarks: 1,000 workspaces, 200 open DBs, cold open, seal/open
	$(GO) test -run '^$$' -bench BenchmarkState -benchtime 1x -timeout 30m ./workspace/
	$(GO) test -run '^$$' -bench 'Seal|Open' ./credentials/

bench: bench-state ## all benchmarks

.PHONY: bench-vectors
bench-vectors: ## vector index: ours vs brute force vs coder/hnsw, 10k and 100k x 384, recall@10, queries/s, build, bytes/vector
	GOMAXPROCS=1 $(GO) run ./vectors/internal/vbench -sizes 10000,100000 -dim 384 -queries 1000

.PHONY: bench-memory
bench-memory: ## memory search: LoCoMo evidence recall@{1,5,10,25} per category (keyword-only) vs plain Bluge; hybrid p50/p99 at 100k chunks; memory after eviction
	$(GO) test -run '^$$' -bench 'BenchmarkLoCoMo|BenchmarkHybrid100k' -benchtime 1x -timeout 60m ./memory/

.PHONY: fuzz-netguard bench-netguard
fuzz-netguard: ## fuzz the SSRF guard's host parser and the embedding answer decoders, 60s each
	$(GO) test -run '^$$' -fuzz FuzzParseHost -fuzztime 60s ./netguard/
	$(GO) test -run '^$$' -fuzz FuzzDecoders -fuzztime 60s ./embed/

bench-netguard: ## guarded vs plain HTTP request over loopback (fresh connection each), ratio; egress proxy tunnel vs direct TCP (setup, throughput)
	$(GO) test -run '^$$' -bench BenchmarkGuardOverhead -benchtime 3000x ./netguard/
	$(GO) test -run '^$$' -bench BenchmarkEgressTunnel -benchtime 30x ./netguard/

.PHONY: bench-fuse
bench-fuse: ## FUSE view vs native on the same fs (root): seq/rand read+write, create/stat 10k, untar Go src, git status; passthrough and not; ratios
	$(GO) test -run '^$$' -bench BenchmarkFUSE -benchtime 5x -timeout 60m ./fusefs/

.PHONY: bench-agent-loop fuzz-agent
bench-agent-loop: ## agent loop against the loopback model: one run (2 turns + a tool call) p50/p99 and allocations, heap per run at 100 concurrent runs, vs the peer's quoted 2.4 s / 170 MB
	$(GO) test -run '^$$' -bench 'BenchmarkRun|BenchmarkConcurrentRuns' -benchtime 2s ./agent/

fuzz-agent: ## fuzz the Anthropic and OpenAI stream decoders, 60s
	$(GO) test -run '^$$' -fuzz FuzzStreamDecoders -fuzztime 60s ./agent/

.PHONY: bench-agent
bench-agent: ## agent runs wired to workspaces (root): one run with a bash call through the real sandbox, p50/p99/cold and host RSS; N=100 concurrent runs in 100 workspaces (BULKHEAD_BENCH_AGENT_N), throughput, errors, host RSS per run; vs the peer's quoted 2.4 s / 170 MB
	$(GO) test -run '^$$' -bench 'BenchmarkAgentRun$$' -benchtime 200x -timeout 30m ./workspace/
	$(GO) test -run '^$$' -bench 'BenchmarkAgentConcurrent$$' -benchtime 1x -timeout 30m ./workspace/

.PHONY: bench-sync fuzz-sync
bench-sync: ## snapshots vs MinIO: full backup of a 1 GiB mixed tree vs raw PutObject of its tar, unchanged and 1% backups, restore, local dir vs plain copy
	$(GO) test -run '^$$' -bench BenchmarkSync -benchtime 1x -timeout 60m ./sync/

fuzz-sync: ## fuzz the snapshot manifest parser for 60 s
	$(GO) test -run '^$$' -fuzz FuzzParseManifest -fuzztime 60s ./sync/

.PHONY: bench-sandbox test-vm
bench-sandbox: ## sandbox (root): cold start vs bwrap --unshare-all, warm exec vs host fork+exec, idle memory, 200 live sandboxes; medians and ratios
	CGO_ENABLED=0 $(GO) test -run '^$$' -bench BenchmarkSandbox -benchtime 1x -timeout 30m ./sandbox/

test-vm: ## boot a Debian kernel under qemu (TCG) on pure cgroup v2 and run the sandbox suite there
	BULKHEAD_TEST_VM=1 BULKHEAD_TEST_NO_SKIP=1 $(GO) test -count=1 -v -timeout 30m -run TestSandboxSuiteInVM ./test/linux-vm/

bench-api: ## API load test: 200 clients x 30 s over 50 workspaces, runs against the instant loopback model; runs/s, p50/p99, errors
	$(GO) test -run '^$$' -bench BenchmarkAPILoad -benchtime 1x -timeout 10m ./server/
