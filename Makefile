# sigwatch — continuous Sigstore signature verification of running images.
#
# `make test` is the whole test suite: go vet, `make verify` (generated files are current) and every test
# against a real kube-apiserver + etcd. The first run builds the control plane from source through the Go
# module proxy (about 11 minutes on 2 cores); later runs reuse bin/k8s.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
export GOTOOLCHAIN := local

LOCALBIN ?= $(CURDIR)/bin
K8S_ASSETS ?= $(LOCALBIN)/k8s
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
CRD_REF_DOCS ?= $(LOCALBIN)/crd-ref-docs
GO_TEST_FLAGS ?= -count=1 -timeout=45m

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
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: manifests generate docs ## Regenerate everything and fail if the tree is then dirty.
	@go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run 'go mod tidy'"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "not gofmt'ed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	@if [ -n "$$(git status --porcelain -- api config docs go.mod go.sum)" ]; then \
		echo "generated files are out of date; run 'make manifests generate docs' and commit:"; \
		git status --porcelain -- api config docs go.mod go.sum; git diff --stat -- api config docs; exit 1; fi

.PHONY: test
test: vet verify envtest-assets $(LOCALBIN)/cosign sigstore-stack ## Run go vet, make verify and all tests against a real API server.
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" go test $(GO_TEST_FLAGS) ./...

##@ Build and run

.PHONY: build
build: ## Build the sigwatch binary into bin/.
	go build -o $(LOCALBIN)/sigwatch ./cmd/sigwatch

.PHONY: demo
demo: envtest-assets build $(LOCALBIN)/cosign sigstore-stack ## Run sigwatch on a local control plane, registry and Sigstore, and show its verdicts (DEMO_KEEP=1 keeps it running).
	KUBEBUILDER_ASSETS="$(K8S_ASSETS)" go run ./test/demo/cmd --sigwatch $(LOCALBIN)/sigwatch

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current KUBECONFIG (install the CRDs first).
	go run ./cmd/sigwatch manager --leader-elect=false --metrics-bind-address=:8080 --metrics-secure=false $(RUN_ARGS)

##@ Deploy (to the cluster of the current KUBECONFIG)

IMG ?= ghcr.io/sigwatch/sigwatch:latest
CONTAINER_TOOL ?= docker
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

.PHONY: docker-build
docker-build: ## Build the container image IMG (needs a Docker engine).
	$(CONTAINER_TOOL) build --build-arg VERSION=$$(git describe --tags --always --dirty 2>/dev/null || echo dev) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image IMG.
	$(CONTAINER_TOOL) push $(IMG)

##@ Tools (built from the Go module proxy, kept out of the operator's go.mod)

$(KUSTOMIZE): hack/tools/kustomize/go.mod hack/tools/kustomize/go.sum
	cd hack/tools/kustomize && go build -o $@ sigs.k8s.io/kustomize/kustomize/v5

$(CONTROLLER_GEN): hack/tools/codegen/go.mod hack/tools/codegen/go.sum
	cd hack/tools/codegen && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

$(CRD_REF_DOCS): hack/tools/codegen/go.mod hack/tools/codegen/go.sum
	cd hack/tools/codegen && go build -o $(CRD_REF_DOCS) github.com/elastic/crd-ref-docs

.PHONY: envtest-assets
envtest-assets: $(K8S_ASSETS)/kube-apiserver $(K8S_ASSETS)/etcd ## Build kube-apiserver and etcd for envtest into bin/k8s.

# Both are built from source because setup-envtest cannot download here. Nothing happens when the binaries
# exist; delete bin/k8s to rebuild.
$(K8S_ASSETS)/kube-apiserver:
	@echo "building kube-apiserver v1.37.2 from source (about 9 minutes the first time on 2 cores)"
	cd hack/tools/envtest/kube-apiserver && go build -trimpath -o $@ k8s.io/kubernetes/cmd/kube-apiserver

$(K8S_ASSETS)/etcd:
	@echo "building etcd v3.6.16 from source (about 2 minutes the first time)"
	cd hack/tools/envtest/etcd && go build -trimpath -o $@ .

.PHONY: cosign
cosign: $(LOCALBIN)/cosign ## Build the cosign v3.1.3 CLI that the tests sign images with into bin/.

# Built from hack/tools/cosign (its own module, so cosign's dependencies stay out of the operator's go.mod).
# Nothing happens when the binary exists; delete bin/cosign to rebuild.
$(LOCALBIN)/cosign:
	@echo "building cosign v3.1.3 from source (a few minutes the first time on 2 cores)"
	cd hack/tools/cosign && go build -trimpath -o $@ github.com/sigstore/cosign/v3/cmd/cosign

.PHONY: sigstore-stack
sigstore-stack: $(LOCALBIN)/fulcio $(LOCALBIN)/rekor-server $(LOCALBIN)/timestamp-server ## Build Fulcio, Rekor v2 and the timestamp authority for the e2e tests and the demo.

# The keyless stack of test/stack, built from hack/tools/sigstore (its own module). Nothing happens when a
# binary exists; delete it to rebuild. timestamp-server is upstream's TSA API without its fixed :2112
# metrics listener (see hack/tools/sigstore/timestamp-server/main.go).
$(LOCALBIN)/fulcio:
	@echo "building fulcio v1.8.8 from source (about a minute the first time on 2 cores)"
	cd hack/tools/sigstore && go build -trimpath -o $@ github.com/sigstore/fulcio

$(LOCALBIN)/rekor-server:
	@echo "building the rekor-tiles v2.3.0 POSIX server from source (about 30 seconds the first time)"
	cd hack/tools/sigstore && go build -trimpath -o $@ github.com/sigstore/rekor-tiles/v2/cmd/rekor-server/posix

$(LOCALBIN)/timestamp-server:
	@echo "building timestamp-authority v2.1.3 from source (about a minute the first time)"
	cd hack/tools/sigstore && go build -trimpath -o $@ ./timestamp-server
