#!/usr/bin/env bash
# The user's path on a laptop: a kind cluster, the image, the chart, a Bookstore and a real order.
#   hack/demo.sh up     # make demo
#   hack/demo.sh down   # make demo-down
# Talks only to the local kind cluster and to 127.0.0.1 (port-forwards).
# The image is tagged by content (hack/image.sh: git sha, plus -dirty-<hash> for uncommitted
# changes), so re-running `make demo` after a code change installs a new tag and the pods roll.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly CLUSTER="bookstore"
IMAGE="$(KIND_CLUSTER="$CLUSTER" hack/image.sh ref)"
readonly IMAGE
readonly RELEASE="bookstore-operator"
readonly RELEASE_NAMESPACE="bookstore-system"
readonly STORE="downtown"
readonly DEMO_ISBN="9780306406157"
readonly CATALOG_PORT="${CATALOG_PORT:-18001}"
readonly ORDERS_PORT="${ORDERS_PORT:-18002}"
HELM="${HELM:-$(command -v helm 2>/dev/null || echo .tools/bin/helm)}"
FORWARDS=()

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() {
    echo "demo: $*" >&2
    exit 1
}

require() {
    local missing=()
    for tool in docker kind kubectl curl; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [[ -x "$HELM" ]] || missing+=("helm (run \`make helm\`)")
    if ((${#missing[@]})); then
        die "missing prerequisite(s): ${missing[*]}. Install them (docker, kind, kubectl) and retry."
    fi
    docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer (is Docker running?)"
}

stop_forwards() {
    local pid
    for pid in "${FORWARDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
}

forward() {
    local service="$1" port="$2"
    kubectl port-forward --address 127.0.0.1 "service/$service" "$port:8000" >/dev/null 2>&1 &
    FORWARDS+=("$!")
    for _ in $(seq 1 60); do
        curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return
        sleep 1
    done
    die "port-forward to $service on 127.0.0.1:$port never answered"
}

up() {
    require
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        say "kind cluster '$CLUSTER' already exists"
    else
        say "Creating kind cluster '$CLUSTER'"
        kind create cluster --name "$CLUSTER" --wait 120s
    fi
    kubectl config use-context "kind-$CLUSTER" >/dev/null

    say "Building $IMAGE and loading it into the cluster"
    IMAGE="$IMAGE" KIND_CLUSTER="$CLUSTER" hack/image.sh kind

    say "Installing the operator chart"
    "$HELM" upgrade --install "$RELEASE" charts/bookstore-operator \
        --namespace "$RELEASE_NAMESPACE" --create-namespace \
        --set "image.repository=${IMAGE%:*}" --set "image.tag=${IMAGE##*:}" \
        --set image.pullPolicy=IfNotPresent \
        --wait --timeout 5m

    say "Creating bookstore/$STORE (examples/bookstore.yaml) and waiting for it to be Ready"
    kubectl apply -f examples/bookstore.yaml
    kubectl wait --for=condition=Ready "bookstore/$STORE" --timeout=5m
    kubectl get bookstores

    say "Placing a real order through port-forwards on 127.0.0.1"
    trap stop_forwards EXIT
    forward "$STORE-catalog" "$CATALOG_PORT"
    forward "$STORE-orders" "$ORDERS_PORT"
    local key book order book_id
    key="$(kubectl get secret "$STORE-api-key" -o jsonpath='{.data.api-key}' | base64 --decode)"
    # Reuse the demo book on a second run (its ISBN is unique in the catalog).
    book_id="$(curl -fsS "http://127.0.0.1:$CATALOG_PORT/books?isbn=$DEMO_ISBN" \
        | python3 -c 'import json, sys; items = json.load(sys.stdin)["items"]; print(items[0]["id"] if items else "")')"
    if [[ -z "$book_id" ]]; then
        book="$(curl -fsS -X POST "http://127.0.0.1:$CATALOG_PORT/books" \
            -H "X-API-Key: $key" -H 'Content-Type: application/json' \
            -d "{\"title\": \"The Demo Book\", \"author\": \"Ada Lovelace\", \"isbn\": \"$DEMO_ISBN\", \"price\": \"12.50\", \"quantity\": 50}")" \
            || die "creating a book failed"
        echo "created book: $book"
        book_id="$(python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <<<"$book")"
    fi
    order="$(curl -fsS -X POST "http://127.0.0.1:$ORDERS_PORT/orders" \
        -H "X-API-Key: $key" -H 'Content-Type: application/json' \
        -d "{\"customer_name\": \"Demo Customer\", \"customer_email\": \"demo@example.com\", \"items\": [{\"book_id\": $book_id, \"quantity\": 2}]}")" \
        || die "placing an order failed"
    echo "placed order: $order"
    echo "stock left:   $(curl -fsS "http://127.0.0.1:$CATALOG_PORT/books/$book_id")"

    say "Done"
    cat <<EOT
The operator runs in namespace $RELEASE_NAMESPACE; bookstore/$STORE runs in namespace default.
  kubectl get bookstores            # READY, PHASE, VERSION, CATALOG, ORDERS
  kubectl describe bookstore $STORE
  kubectl port-forward service/$STORE-catalog 8000:8000   # then http://127.0.0.1:8000/docs
Clean up everything (deletes the kind cluster '$CLUSTER'):
  make demo-down
EOT
}

down() {
    command -v kind >/dev/null 2>&1 || die "missing prerequisite: kind"
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        # Bookstores first, while the operator can still remove kopf's finalizer; then the
        # operator; then the cluster. The same order works on a cluster you keep.
        if command -v kubectl >/dev/null 2>&1 \
            && kubectl --context "kind-$CLUSTER" get crd bookstores.bookstore.dev >/dev/null 2>&1; then
            say "Deleting every Bookstore and waiting until they are gone"
            kubectl --context "kind-$CLUSTER" delete bookstores --all --all-namespaces --wait \
                --timeout=5m || echo "demo: some Bookstores were not deleted in 5m" >&2
            if [[ -x "$HELM" ]]; then
                say "Uninstalling the operator chart"
                "$HELM" --kube-context "kind-$CLUSTER" uninstall "$RELEASE" \
                    --namespace "$RELEASE_NAMESPACE" --wait || true
            fi
        fi
        say "Deleting kind cluster '$CLUSTER'"
        kind delete cluster --name "$CLUSTER"
    else
        echo "demo: no kind cluster '$CLUSTER'; nothing to delete"
    fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) die "usage: $0 up|down" ;;
esac
