#!/usr/bin/env bash
# The end-to-end journey (test/e2e/journey.test.ts, the same checks `npm run test:e2e` runs on
# this repository's own single-node cluster) on a kind cluster: the operator image built with
# docker and loaded into kind, then `kubectl apply -k deploy/`, the examples, 403 without a grant,
# a rollout restart under load, a leader that goes away, and deploy/ha/ on Redis.
#
#   test/e2e/kind.sh
#
# Needs docker (with a running daemon), kind, kubectl and Node 24 (npm ci first). Environment:
#   KIND_CLUSTER     cluster name (default keypool-e2e)
#   IMAGE            image built from the repository root and loaded into kind (default keypool-operator:e2e)
#   KIND_NODE_IMAGE  kind node image, e.g. kindest/node:v1.34.0 (default: kind's own)
#   REUSE_CLUSTER=1  use the cluster KIND_CLUSTER when it exists instead of creating one
#   KEEP_CLUSTER=1   keep the cluster at the end (default: delete it, pass or fail)
# The other images the journey runs (node:24-slim, curlimages/curl:8.11.1, redis:7) are pulled by
# the kind node; KEYPOOL_E2E_NODE_IMAGE, KEYPOOL_E2E_CURL_IMAGE and KEYPOOL_E2E_REDIS_IMAGE
# name others.
#
# kubectl talks to the cluster through a kubeconfig of its own: ~/.kube/config is left alone.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

KIND_CLUSTER="${KIND_CLUSTER:-keypool-e2e}"
IMAGE="${IMAGE:-keypool-operator:e2e}"
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-}"
REUSE_CLUSTER="${REUSE_CLUSTER:-}"
KEEP_CLUSTER="${KEEP_CLUSTER:-}"

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
# The journey prints the operator's, the fake provider's and the callers' logs when a check fails.
dump_diagnostics() {
  log "pods"
  kubectl get pods -A -o wide || true
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

# --- the journey --------------------------------------------------------------------------------
log "the journey (test/e2e/journey.test.ts) on kind cluster $KIND_CLUSTER"
deployed=1
KEYPOOL_E2E_KUBECONFIG="$KUBECONFIG" KEYPOOL_E2E_OPERATOR_IMAGE="$IMAGE" \
  npx vitest run -c vitest.e2e.config.ts
