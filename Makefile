# sigwatch — continuous Sigstore signature verification of running images.
#
# `make test` is the whole test suite: go vet, `make lint` (kube-api-linter over api/), `make verify`
# (generated files are current) and every test against a real kube-apiserver + etcd, the real cosign and
# the real keyless Sigstore stack. The tiers:
#   make test-unit         no API server and no tool binary: runs on a fresh clone in seconds
#   make test-integration  adds the envtest API server and cosign (build tag `integration`)
#   make test-e2e          the real keyless stack and the demo (build tag `e2e`)
# `make fuzz` runs each Go fuzz target for FUZZTIME (30s); the tiers above run the fuzz seeds as tests.
# The first run builds the tools from source through the Go module proxy (about 15 minutes on 2 cores);
# later runs reuse bin/, and a tool is rebuilt when its module under hack/tools/ changes.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
export GOTOOLCHAIN := local

LOCALBIN ?= $(CURDIR)/bin
K8S_ASSETS ?= $(LOCALBIN)/k8s
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
HELM ?= $(LOCALBIN)/helm
KO ?= $(LOCALBIN)/ko
GO_TEST_FLAGS ?= -count=1 -timeout=45m
# Every test file that needs a tool binary or a control plane carries one of these build tags.
ALL_TAGS := integration,e2e

# modversion reads the version of a module from a tool module's go.mod, so that each version is written
# once: $(call modversion,hack/tools/cosign,github.com/sigstore/cosign/v3).
modversion = $(shell awk -v m='$(2)' '$$1==m && $$2 ~ /^v/ {print $$2} $$1=="require" && $$2==m {print $$3}' $(1)/go.mod)

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate the CRDs and RBAC from the markers in api/ and controllers/.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./..." output:crd:artifacts:config=config/crd/bases
	@$(MAKE) --no-print-directory chart-files

# The Helm chart carries copies of what config/ generates or holds: the CRDs (crds/, byte for byte), the
# manager's ClusterRole rules, the alerts and the Grafana dashboard. `make manifests` refreshes them, and
# `make verify` fails when a copy is not committed.
.PHONY: chart-files
chart-files: ## Copy the CRDs, the manager's RBAC, the alerts and the dashboard from config/ into charts/sigwatch.
	@mkdir -p charts/sigwatch/crds charts/sigwatch/files charts/sigwatch/dashboards
	rm -f charts/sigwatch/crds/*.yaml
	cp config/crd/bases/*.yaml charts/sigwatch/crds/
	cp config/rbac/role.yaml charts/sigwatch/files/manager-role.yaml
	cp config/prometheus/rules.yaml charts/sigwatch/files/prometheus-rules.yaml
	if [ -f config/grafana/sigwatch-dashboard.json ]; then cp config/grafana/sigwatch-dashboard.json charts/sigwatch/dashboards/sigwatch.json; fi

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate the deepcopy methods of api/.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: docs
docs: $(CRD_REF_DOCS) ## Generate the API reference docs/api.md from the doc comments in api/.
	@mkdir -p docs
	$(CRD_REF_DOCS) --config=hack/crd-ref-docs.yaml --renderer=markdown --source-path=./api/v1alpha1 --output-path=docs/api.md --log-level=WARN

.PHONY: fmt
fmt: ## Run gofmt.
	gofmt -l -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet over every file, tagged tests included.
	go vet -tags $(ALL_TAGS) ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run kube-api-linter over the API types (.golangci.yml).
	$(GOLANGCI_LINT) run ./api/...

# helm-lint lints the chart with its defaults and with each ci/*-values.yaml (every value set).
.PHONY: helm-lint
helm-lint: $(HELM) ## Lint the Helm chart charts/sigwatch (strict), with its defaults and its ci/*-values.yaml.
	$(HELM) lint --strict charts/sigwatch
	for f in charts/sigwatch/ci/*-values.yaml; do $(HELM) lint --strict charts/sigwatch --values "$$f"; done

.PHONY: verify
verify: manifests generate docs ## Regenerate everything and fail if the tree is then dirty.
	@go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt'ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@if [ -n "$$(git status --porcelain -- api charts config docs go.mod go.sum)" ]; then \
		echo "generated files are out of date; run 'make manifests generate docs' and commit:"; \
		git status --porcelain -- api charts config docs go.mod go.sum; git diff --stat -- api charts config docs; exit 1; fi

.PHONY: test
test: vet lint verify envtest-assets $(LOCALBIN)/cosign sigstore-stack rekor-v1-stack $(HELM) $(KO) $(LOCALBIN)/promql-check ## Run go vet, make lint, make verify and every test (what CI runs).
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" go test -tags $(ALL_TAGS) $(GO_TEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## Run the tests that need no API server and no tool binary (seconds, on a fresh clone).
	go test $(GO_TEST_FLAGS) ./...

.PHONY: test-integration
test-integration: envtest-assets $(LOCALBIN)/cosign $(HELM) $(KO) $(LOCALBIN)/promql-check ## Run the unit tests and those against envtest and the real cosign.
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" go test -tags integration $(GO_TEST_FLAGS) ./...

.PHONY: test-e2e
test-e2e: envtest-assets $(LOCALBIN)/cosign sigstore-stack rekor-v1-stack $(KO) ## Run the end-to-end suites: the real keyless stack and the demo.
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" go test -tags e2e $(GO_TEST_FLAGS) ./test/...

# FUZZTIME bounds each fuzz target's run. The seeds of every target (f.Add and testdata/fuzz/) already run
# as ordinary tests in `make test` and `make test-unit`. FUZZMINIMIZETIME bounds the minimizing of each
# new input (Go's default, 60s per input, leaves targets whose inputs take milliseconds no time to fuzz).
FUZZTIME ?= 30s
FUZZMINIMIZETIME ?= 100x
# FUZZ_DIRS are the package directories with fuzz targets; `go test -list` then names their targets.
FUZZ_DIRS ?= $$(grep -rl --include='*_test.go' '^func Fuzz' api cmd controllers internal test 2>/dev/null | xargs -r -n1 dirname | sort -u)

# A target fails on a crash (its input is written under testdata/fuzz/) or a build failure. Go 1.26's fuzz
# coordinator can also end a run with a bare "context deadline exceeded" and no input written
# (go.dev/issue/75804, fixed in Go 1.27): that is reported, not counted as a failure.
.PHONY: fuzz
fuzz: ## Run each Go fuzz target for FUZZTIME (default 30s), one at a time; a crash's input is kept under testdata/fuzz/.
	@failed=""; out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	for dir in $(FUZZ_DIRS); do \
		targets=$$(go test -list '^Fuzz' ./$$dir) || { failed="$$failed ./$$dir(build)"; continue; }; \
		for target in $$(echo "$$targets" | grep '^Fuzz'); do \
			echo "== fuzzing $$target in ./$$dir for $(FUZZTIME)"; \
			before=$$( (ls -A $$dir/testdata/fuzz/$$target 2>/dev/null || true) | wc -l); \
			if ! go test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZETIME) ./$$dir 2>&1 | tee "$$out"; then \
				after=$$( (ls -A $$dir/testdata/fuzz/$$target 2>/dev/null || true) | wc -l); \
				if [ "$$after" = "$$before" ] && grep -qx '    context deadline exceeded' "$$out"; then \
					echo "== $$target: the fuzz coordinator's deadline race (go.dev/issue/75804), no input written: not a finding"; \
				else \
					failed="$$failed ./$$dir:$$target"; \
				fi; \
			fi; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzzing failed:$$failed (inputs under each package's testdata/fuzz/)"; exit 1; fi

##@ Benchmarks

# BENCH_SCALE_FLAGS are flags of test/scale/cmd/bench-scale: -digests, -pods, -namespaces, -unsigned,
# -manager (an older build to measure), -manager-arg (repeatable), -kubeconfig-env, -timeout, -progress.
BENCH_SCALE_FLAGS ?=

.PHONY: bench-scale
bench-scale: envtest-assets ## Run the scale benchmark: the manager on 2000 signed digests run by 10000 pods (not part of make test; BENCH_SCALE_FLAGS).
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" go run ./test/scale/cmd/bench-scale $(BENCH_SCALE_FLAGS)

##@ Build and run

.PHONY: build
build: ## Build the sigwatch binary into bin/, and bin/kubectl-sigwatch (the same binary, as a kubectl plugin).
	go build -ldflags "$(VERSION_LDFLAGS)" -o $(LOCALBIN)/sigwatch ./cmd/sigwatch
	ln -sf sigwatch $(LOCALBIN)/kubectl-sigwatch

.PHONY: install-kubectl-plugin
install-kubectl-plugin: build ## Install sigwatch as the kubectl plugin kubectl-sigwatch into PREFIX/bin (default /usr/local): kubectl sigwatch report.
	install -m 0755 $(LOCALBIN)/sigwatch $(or $(PREFIX),/usr/local)/bin/kubectl-sigwatch

.PHONY: demo
demo: envtest-assets build $(LOCALBIN)/cosign sigstore-stack ## Run sigwatch on a local control plane, registry and Sigstore, and show its verdicts (DEMO_KEEP=1 keeps it running).
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" go run ./test/demo/cmd --sigwatch $(LOCALBIN)/sigwatch

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current KUBECONFIG (install the CRDs first).
	go run ./cmd/sigwatch manager --leader-elect=false --metrics-bind-address=:8080 --metrics-secure=false $(RUN_ARGS)

##@ Deploy (to the cluster of the current KUBECONFIG)

IMG ?= ghcr.io/sigwatch/sigwatch:latest
KUSTOMIZE ?= $(LOCALBIN)/kustomize

.PHONY: install
install: manifests ## Install the CRDs.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: manifests ## Uninstall the CRDs (and with them every policy and SignedImage).
	kubectl delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests $(KUSTOMIZE) ## Deploy sigwatch (config/default) with the image IMG.
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r config "$$tmp/" && \
	(cd "$$tmp/config/manager" && $(KUSTOMIZE) edit set image controller=$(IMG)) && \
	$(KUSTOMIZE) build "$$tmp/config/default" | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: $(KUSTOMIZE) ## Remove what deploy installed.
	$(KUSTOMIZE) build config/default | kubectl delete --ignore-not-found -f -

# `make image` builds the manager image with ko, without Docker (.ko.yaml: the static binary, CGO_ENABLED=0,
# -trimpath, -ldflags "-s -w" and the VERSION, REVISION and BUILD_DATE below stamped into internal/version,
# at /ko-app/sigwatch on distroless static nonroot),
# for every platform of KO_PLATFORMS, and pushes it, an image index, to IMG's repository under IMG's tag
# (latest when IMG has none) and the tags of IMAGE_EXTRA_TAGS (comma-separated), with an SPDX SBOM
# (KO_SBOM=none for none). It prints the pushed reference with its digest; IMAGE_REFS=FILE writes it to
# FILE too. KO_DEFAULTBASEIMAGE replaces the base image.
# Registries on 127.0.0.1 and localhost are spoken to over plain HTTP; others over HTTPS, with the
# credentials of ~/.docker/config.json (`bin/ko login REGISTRY -u USER --password-stdin`).
comma := ,
KO_PLATFORMS ?= linux/amd64,linux/arm64
KO_SBOM ?= spdx
IMAGE_EXTRA_TAGS ?=
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# What `sigwatch version` prints, set by make build and make image (.ko.yaml): the commit, and the build
# time (SOURCE_DATE_EPOCH when set, for reproducible builds).
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BUILD_DATE ?= $(if $(SOURCE_DATE_EPOCH),$(shell date -u -d "@$(SOURCE_DATE_EPOCH)" +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -r "$(SOURCE_DATE_EPOCH)" +%Y-%m-%dT%H:%M:%SZ),$(shell date -u +%Y-%m-%dT%H:%M:%SZ))
VERSION_PKG = github.com/sigwatch/sigwatch/internal/version
VERSION_LDFLAGS = -X $(VERSION_PKG).version=$(VERSION) -X $(VERSION_PKG).revision=$(REVISION) -X $(VERSION_PKG).buildDate=$(BUILD_DATE)

.PHONY: image
image: $(KO) ## Build the manager image for linux/amd64 and arm64 with ko (no Docker), push it to IMG and print its digest.
	@if [ "$(origin IMG)" = file ]; then echo "make image pushes: name the image, e.g. make image IMG=registry.example.com/sigwatch:dev (the default, $(IMG), is the released one)"; exit 2; fi
	@repo="$(IMG)"; tag=latest; last="$${repo##*/}"; \
	if [[ "$$last" == *:* ]]; then tag="$${last##*:}"; repo="$${repo%:*}"; fi; \
	echo "building sigwatch $(VERSION) for $(KO_PLATFORMS) with ko, for $$repo:$$tag"; \
	ref=$$(KO_DOCKER_REPO="$$repo" VERSION="$(VERSION)" REVISION="$(REVISION)" BUILD_DATE="$(BUILD_DATE)" $(if $(KO_DEFAULTBASEIMAGE),KO_DEFAULTBASEIMAGE="$(KO_DEFAULTBASEIMAGE)") \
		$(KO) build --bare --platform=$(KO_PLATFORMS) --tags="$$tag$(if $(IMAGE_EXTRA_TAGS),$(comma)$(IMAGE_EXTRA_TAGS))" --sbom=$(KO_SBOM) $(if $(IMAGE_REFS),--image-refs="$(IMAGE_REFS)") ./cmd/sigwatch); \
	echo "pushed $$ref in $${SECONDS}s"

##@ Tools (built from the Go module proxy, kept out of the operator's go.mod)

$(KUSTOMIZE): hack/tools/kustomize/go.mod hack/tools/kustomize/go.sum
	cd hack/tools/kustomize && go build -o $@ sigs.k8s.io/kustomize/kustomize/v5
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

.PHONY: ko
ko: $(KO) ## Build ko, which make image builds the manager image with, into bin/.

$(KO): hack/tools/ko/go.mod hack/tools/ko/go.sum
	@echo "building ko $(call modversion,hack/tools/ko,github.com/google/ko) from source (about 80 seconds the first time on 2 cores)"
	cd hack/tools/ko && go build -trimpath -o $@ github.com/google/ko
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

$(CONTROLLER_GEN): hack/tools/codegen/go.mod hack/tools/codegen/go.sum
	cd hack/tools/codegen && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

$(CRD_REF_DOCS): hack/tools/codegen/go.mod hack/tools/codegen/go.sum
	cd hack/tools/codegen && go build -o $(CRD_REF_DOCS) github.com/elastic/crd-ref-docs
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

# golangci-lint v2 with kube-api-linter compiled in (kube-api-linter's own main package).
$(GOLANGCI_LINT): hack/tools/golangci-lint/go.mod hack/tools/golangci-lint/go.sum
	@echo "building golangci-lint $(call modversion,hack/tools/golangci-lint,github.com/golangci/golangci-lint/v2) with kube-api-linter (a few minutes the first time)"
	cd hack/tools/golangci-lint && go build -trimpath -o $@ sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

HELM_VERSION = $(call modversion,hack/tools/helm,helm.sh/helm/v4)

.PHONY: helm
helm: $(HELM) ## Build the helm CLI that renders and lints charts/sigwatch into bin/.

$(HELM): hack/tools/helm/go.mod hack/tools/helm/go.sum
	@echo "building helm $(HELM_VERSION) from source (about 7 minutes the first time on 2 busy cores)"
	cd hack/tools/helm && go build -trimpath -o $@ helm.sh/helm/v4/cmd/helm
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

.PHONY: envtest-assets
envtest-assets: $(K8S_ASSETS)/kube-apiserver $(K8S_ASSETS)/etcd ## Build kube-apiserver and etcd for envtest into bin/k8s.

# Every tool is built from source (nothing can be downloaded here) from its own module under hack/tools/,
# whose go.mod holds the one place its version is written; changing that module rebuilds the tool.
KUBE_VERSION   = $(call modversion,hack/tools/envtest/kube-apiserver,k8s.io/kubernetes)
ETCD_VERSION   = $(call modversion,hack/tools/envtest/etcd,go.etcd.io/etcd/server/v3)
COSIGN_VERSION = $(call modversion,hack/tools/cosign,github.com/sigstore/cosign/v3)
FULCIO_VERSION = $(call modversion,hack/tools/sigstore,github.com/sigstore/fulcio)
REKOR_VERSION  = $(call modversion,hack/tools/sigstore,github.com/sigstore/rekor-tiles/v2)
TSA_VERSION    = $(call modversion,hack/tools/sigstore,github.com/sigstore/timestamp-authority/v2)

$(K8S_ASSETS)/kube-apiserver: hack/tools/envtest/kube-apiserver/go.mod hack/tools/envtest/kube-apiserver/go.sum
	@echo "building kube-apiserver $(KUBE_VERSION) from source (about 9 minutes the first time on 2 cores)"
	cd hack/tools/envtest/kube-apiserver && go build -trimpath -o $@ k8s.io/kubernetes/cmd/kube-apiserver
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

$(K8S_ASSETS)/etcd: hack/tools/envtest/etcd/go.mod hack/tools/envtest/etcd/go.sum $(wildcard hack/tools/envtest/etcd/*.go)
	@echo "building etcd $(ETCD_VERSION) from source (about 2 minutes the first time)"
	cd hack/tools/envtest/etcd && go build -trimpath -o $@ .
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

.PHONY: cosign
cosign: $(LOCALBIN)/cosign ## Build the cosign CLI that the tests sign images with into bin/.

$(LOCALBIN)/cosign: hack/tools/cosign/go.mod hack/tools/cosign/go.sum
	@echo "building cosign $(COSIGN_VERSION) from source (a few minutes the first time on 2 cores)"
	cd hack/tools/cosign && go build -trimpath -o $@ github.com/sigstore/cosign/v3/cmd/cosign
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

.PHONY: promql-check
promql-check: $(LOCALBIN)/promql-check ## Build the PromQL checker that test/monitoring runs over the dashboard, alerts and docs into bin/.

# The Prometheus PromQL parser (its own module: github.com/prometheus/prometheus stays out of go.mod).
$(LOCALBIN)/promql-check: hack/tools/promql/go.mod hack/tools/promql/go.sum $(wildcard hack/tools/promql/*.go)
	cd hack/tools/promql && go build -trimpath -o $@ .
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

.PHONY: sigstore-stack
sigstore-stack: $(LOCALBIN)/fulcio $(LOCALBIN)/rekor-server $(LOCALBIN)/timestamp-server ## Build Fulcio, Rekor v2 and the timestamp authority for the e2e tests and the demo.

# The keyless stack of test/stack, built from hack/tools/sigstore. timestamp-server is upstream's TSA API
# without its fixed :2112 metrics listener (see hack/tools/sigstore/timestamp-server/main.go).
SIGSTORE_MOD := hack/tools/sigstore/go.mod hack/tools/sigstore/go.sum

$(LOCALBIN)/fulcio: $(SIGSTORE_MOD)
	@echo "building fulcio $(FULCIO_VERSION) from source (about a minute the first time on 2 cores)"
	cd hack/tools/sigstore && go build -trimpath -o $@ github.com/sigstore/fulcio
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

$(LOCALBIN)/rekor-server: $(SIGSTORE_MOD)
	@echo "building the rekor-tiles $(REKOR_VERSION) POSIX server from source (about 30 seconds the first time)"
	cd hack/tools/sigstore && go build -trimpath -o $@ github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module

# The Rekor v1 stack of the live transparency log tests (test/stack/rekorv1.go), built from
# hack/tools/rekorv1: rekor-server v1.5.4 (without its fixed :2112 metrics listener, see
# hack/tools/rekorv1/rekor-server/main.go), and Trillian v1.7.3's log server, log signer and createtree with
# MySQL storage, over MariaDB from Debian's mariadb-server package (installed when missing: needs root and
# apt, as on CI machines).
REKORV1_MOD := hack/tools/rekorv1/go.mod hack/tools/rekorv1/go.sum
TRILLIAN_VERSION = $(call modversion,hack/tools/rekorv1,github.com/google/trillian)
REKORV1_VERSION  = $(call modversion,hack/tools/rekorv1,github.com/sigstore/rekor)

.PHONY: rekor-v1-stack
rekor-v1-stack: $(LOCALBIN)/rekor-v1-server $(LOCALBIN)/trillian_log_server $(LOCALBIN)/trillian-storage.sql mariadb ## Build Rekor v1 and Trillian, and install MariaDB, for the live transparency log tests.

$(LOCALBIN)/rekor-v1-server: $(REKORV1_MOD) $(wildcard hack/tools/rekorv1/rekor-server/*.go)
	@echo "building rekor-server $(REKORV1_VERSION) from source (about two minutes the first time on 2 cores)"
	cd hack/tools/rekorv1 && go build -trimpath -o $@ ./rekor-server
	@touch $@

$(LOCALBIN)/trillian_log_server: $(REKORV1_MOD)
	@echo "building Trillian $(TRILLIAN_VERSION) (log server, log signer, createtree) from source (about two minutes the first time)"
	cd hack/tools/rekorv1 && go build -tags mysql -trimpath -o $(LOCALBIN)/ github.com/google/trillian/cmd/trillian_log_server \
		github.com/google/trillian/cmd/trillian_log_signer github.com/google/trillian/cmd/createtree
	@touch $@ $(LOCALBIN)/trillian_log_signer $(LOCALBIN)/createtree

$(LOCALBIN)/trillian-storage.sql: $(LOCALBIN)/trillian_log_server
	cp "$$(cd hack/tools/rekorv1 && go list -m -f '{{.Dir}}' github.com/google/trillian)/storage/mysql/schema/storage.sql" $@
	chmod 0644 $@

.PHONY: mariadb
mariadb: ## Install MariaDB from Debian's packages when it is missing (root and apt).
	@if command -v mariadbd >/dev/null 2>&1 || test -x /usr/sbin/mariadbd; then exit 0; fi; \
	echo "installing mariadb-server from Debian's packages"; \
	if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends mariadb-server >/dev/null

$(LOCALBIN)/timestamp-server: $(SIGSTORE_MOD) $(wildcard hack/tools/sigstore/timestamp-server/*.go)
	@echo "building timestamp-authority $(TSA_VERSION) from source (about a minute the first time)"
	cd hack/tools/sigstore && go build -trimpath -o $@ ./timestamp-server
	@touch $@ # go build leaves an up-to-date binary as it was: mark it newer than its module
