#!/usr/bin/env bash
# End-to-end test on a kind cluster: the operator image, deployed with `kubectl apply -k deploy/`,
# hands a key to a client Job and proxies its chat completion to a fake OpenAI provider running in
# the cluster.
#
#   test/e2e/kind.sh
#
# Needs docker (with a running daemon), kind and kubectl. Environment:
#   KIND_CLUSTER     cluster name (default keypool-e2e)
#   IMAGE            image built from the repository root and loaded into kind (default keypool-operator:e2e)
#   KIND_NODE_IMAGE  kind node image, e.g. kindest/node:v1.34.0 (default: kind's own)
#   REUSE_CLUSTER=1  use the cluster KIND_CLUSTER when it exists instead of creating one
#   KEEP_CLUSTER=1   keep the cluster at the end (default: delete it, pass or fail)
# For quick iterations: REUSE_CLUSTER=1 KEEP_CLUSTER=1 test/e2e/kind.sh
#
# kubectl talks to the cluster through a kubeconfig of its own: ~/.kube/config is left alone.
# On failure the script prints the client Job's logs, the operator's and the fake provider's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

KIND_CLUSTER="${KIND_CLUSTER:-keypool-e2e}"
IMAGE="${IMAGE:-keypool-operator:e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
REUSE_CLUSTER="${REUSE_CLUSTER:-}"
KEEP_CLUSTER="${KEEP_CLUSTER:-}"

OPERATOR_NS=keypool-system
E2E_NS=e2e
POOL=openai-e2e

log() { printf '\n==> %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*" >&2
  exit 1
}
# Set, and not 0/false/no: REUSE_CLUSTER=1 and REUSE_CLUSTER=true turn it on, REUSE_CLUSTER=0 does not.
enabled() {
  case "$1" in
    "" | 0 | [Ff][Aa][Ll][Ss][Ee] | [Nn][Oo] | [Oo][Ff][Ff]) return 1 ;;
    *) return 0 ;;
  esac
}

# --- prerequisites ------------------------------------------------------------------------------
missing=0
need() {
  if ! command -v "$1" >/dev/null 2>&1; then
    printf 'missing prerequisite: %s is not on the PATH. %s\n' "$1" "$2" >&2
    missing=1
  fi
}
need docker "Install Docker: https://docs.docker.com/get-docker/"
need kind "Install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or: go install sigs.k8s.io/kind@latest)"
need kubectl "Install kubectl: https://kubernetes.io/docs/tasks/tools/#kubectl"
if [ "$missing" -ne 0 ]; then
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  fail "docker cannot reach its daemon ('docker info' failed): start Docker, or check DOCKER_HOST and your permissions on the socket"
fi

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/keypool-e2e.XXXXXX")"
export KUBECONFIG="$WORK_DIR/kubeconfig"
deployed=0 # 1 once there is something to print diagnostics about

# --- diagnostics and clean-up -------------------------------------------------------------------
dump_diagnostics() {
  log "client Job"
  kubectl describe job/client -n "$E2E_NS" || true
  kubectl logs -n "$E2E_NS" -l job-name=client --all-containers --prefix --tail=-1 || true
  log "KeyPool $E2E_NS/$POOL"
  kubectl get keypool "$POOL" -n "$E2E_NS" -o yaml || true
  log "events in $E2E_NS"
  kubectl get events -n "$E2E_NS" --sort-by=.lastTimestamp || true
  log "operator"
  kubectl get deployment,replicaset,pods -n "$OPERATOR_NS" -o wide || true
  local pod
  for pod in $(kubectl get pods -n "$OPERATOR_NS" -o name 2>/dev/null); do
    log "logs of $pod"
    kubectl logs -n "$OPERATOR_NS" "$pod" --all-containers --tail=300 || true
  done
  kubectl get events -n "$OPERATOR_NS" --sort-by=.lastTimestamp || true
  log "fake provider"
  kubectl get pods -n "$E2E_NS" -l app.kubernetes.io/name=fake-provider -o wide || true
  kubectl logs -n "$E2E_NS" deployment/fake-provider --all-containers --tail=100 || true
}

on_exit() {
  local status=$?
  set +e
  if [ "$status" -ne 0 ] && [ "$deployed" -eq 1 ]; then
    dump_diagnostics
  fi
  if enabled "$KEEP_CLUSTER"; then
    log "keeping cluster $KIND_CLUSTER (kind delete cluster --name $KIND_CLUSTER); kubeconfig: $KUBECONFIG"
  else
    log "deleting cluster $KIND_CLUSTER"
    kind delete cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG"
    rm -rf "$WORK_DIR"
  fi
  if [ "$status" -eq 0 ]; then
    log "PASS"
  else
    printf '\nFAIL (exit %s)\n' "$status" >&2
  fi
  exit "$status"
}

# --- cluster ------------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  if ! enabled "$REUSE_CLUSTER"; then
    rm -rf "$WORK_DIR"
    fail "a kind cluster named $KIND_CLUSTER exists already: set REUSE_CLUSTER=1 to use it, or KIND_CLUSTER to another name, or delete it (kind delete cluster --name $KIND_CLUSTER)"
  fi
  reused=1
else
  reused=0
fi

# From here on the cluster is ours to delete on exit (unless KEEP_CLUSTER).
trap on_exit EXIT

if [ "$reused" -eq 1 ]; then
  log "reusing kind cluster $KIND_CLUSTER"
  kind get kubeconfig --name "$KIND_CLUSTER" >"$KUBECONFIG"
else
  log "creating kind cluster $KIND_CLUSTER"
  create_args=(create cluster --name "$KIND_CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s)
  if [ -n "$KIND_NODE_IMAGE" ]; then
    create_args+=(--image "$KIND_NODE_IMAGE")
  fi
  kind "${create_args[@]}"
fi
kubectl cluster-info

# --- operator image -----------------------------------------------------------------------------
log "building $IMAGE"
docker build -t "$IMAGE" .
log "loading $IMAGE into kind"
kind load docker-image "$IMAGE" --name "$KIND_CLUSTER"

# --- operator -----------------------------------------------------------------------------------
log "kubectl apply -k deploy/"
deployed=1
kubectl apply -k deploy/
kubectl wait --for=condition=Established crd/keypools.keypool.dev --timeout=60s
kubectl set image deployment/keypool-operator -n "$OPERATOR_NS" operator="$IMAGE"
if [ "$reused" -eq 1 ]; then
  # Same image name, maybe new content: start pods from the image just loaded.
  kubectl rollout restart deployment/keypool-operator -n "$OPERATOR_NS"
fi
kubectl rollout status deployment/keypool-operator -n "$OPERATOR_NS" --timeout=180s

# --- fake OpenAI provider -----------------------------------------------------------------------
log "fake OpenAI provider"
kubectl create namespace "$E2E_NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl create configmap fake-provider -n "$E2E_NS" --from-file=test/fakes/ \
  --from-file=test/e2e/fake-provider.ts --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f test/e2e/fake-provider.yaml
if [ "$reused" -eq 1 ]; then
  kubectl rollout restart deployment/fake-provider -n "$E2E_NS"
fi
kubectl rollout status deployment/fake-provider -n "$E2E_NS" --timeout=180s

# --- the scenario -------------------------------------------------------------------------------
log "KeyPool, RBAC and client Job (test/e2e/manifests.yaml)"
# A Job runs once: a reused cluster's old one would never run again.
kubectl delete job/client -n "$E2E_NS" --ignore-not-found --wait=true
kubectl apply -f test/e2e/manifests.yaml

log "waiting for the client Job"
if ! kubectl wait --for=condition=complete job/client -n "$E2E_NS" --timeout=180s; then
  fail "the client Job did not complete"
fi
kubectl logs -n "$E2E_NS" job/client

log "checking KeyPool $E2E_NS/$POOL is Ready"
if ! kubectl wait --for=condition=Ready "keypool/$POOL" -n "$E2E_NS" --timeout=60s; then
  fail "KeyPool $E2E_NS/$POOL is not Ready"
fi
kubectl get keypool "$POOL" -n "$E2E_NS" -o wide
