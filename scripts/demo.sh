#!/usr/bin/env bash
# The weir demo: builds weir, creates a lab of network namespaces with weir-agent enforcing in
# the kernel, applies CiliumNetworkPolicies, drives traffic and shows what `weir observe` saw.
# Run as root on Debian/Ubuntu; it installs what is missing. WEIR_DEMO_KEEP=1 leaves the lab
# running afterwards (remove it with `weir lab down --prefix weir-demo`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
weir_need_root "the demo"
weir_deps
weir_mount_bpffs

PREFIX=weir-demo
echo "==> Building weir and weir-agent (release)"
cargo build --release --locked -p weir-cli -p weir-flow-agent
export PATH="$PWD/target/release:$PATH"

cleanup() {
	if [ "${WEIR_DEMO_KEEP:-}" = "1" ]; then
		echo
		echo "The lab stays up (WEIR_DEMO_KEEP=1). Explore it with:"
		echo "  export PATH=$PWD/target/release:\$PATH WEIR_SERVER=$WEIR_SERVER"
		echo "  weir observe -f        # and: weir lab down --prefix $PREFIX"
	else
		weir lab down --prefix "$PREFIX" >/dev/null 2>&1 || true
		echo
		echo "Lab removed. Run with WEIR_DEMO_KEEP=1 to keep it for exploring."
	fi
}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

weir lab down --prefix "$PREFIX" >/dev/null 2>&1 || true
step "Creating the lab: a node namespace with weir-agent, endpoints, and an outside world"
# --http-flow-headers: HTTP flows carry the values of these request headers.
weir lab up --prefix "$PREFIX" --agent-arg=--http-flow-headers=content-type,x-request-id
export WEIR_SERVER="unix:///run/weir-lab/$PREFIX/node1/hubble.sock"
trap cleanup EXIT
trap 'exit 130' INT TERM

RUN=/run/weir-lab/$PREFIX
ip_of() { sed -n 's/^- \(10\.[0-9.]*\)$/\1/p' "$RUN/state/endpoints/$1.yaml" | head -n 1; }
USERS=$(ip_of default_users-0)
CATALOG=$(ip_of default_catalog-0)

step "Applying policies (frontend -> users:80 only; reco may only reach kube-dns; billing never reaches the world)"
cp lab/demo/*.yaml "$RUN/policies/"
for f in lab/demo/*.yaml; do sed -n 's/^# /   /p' "$f"; done
wait_policy() { # name: until the agent enforces it (20 s at most)
	for _ in $(seq 1 100); do
		if weir policy get -o json 2>/dev/null | grep -q "\"$1\""; then return 0; fi
		sleep 0.2
	done
	echo "the agent did not apply policy $1; its log: $RUN/node1/agent.log" >&2
	exit 1
}
wait_policy users-ingress

request() { # from-endpoint url
	local code
	code=$(ip netns exec "$PREFIX-default-$1" curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$2" || true)
	if [ "$code" = "000" ]; then code="no answer (dropped)"; fi
	printf '   %-12s -> %-32s %s\n' "$1" "$2" "$code"
}
step "Driving traffic"
request frontend-0 "http://$USERS/api/v1/users/1"
request billing-0 "http://$USERS/api/v1/users/1"
request frontend-0 "http://$CATALOG/products"
request reco-0 "http://$CATALOG/products"
request billing-0 "http://198.51.100.10/"
request frontend-0 "http://198.51.100.10/"
sleep 1

step "Every flow the datapath reported"
show weir observe --last 40
step "Only the drops"
show weir observe --verdict DROPPED
step "Policy verdicts, with the policies that decided"
show weir observe -t policy-verdict --print-policy-names --last 10
step "Agent status"
show weir status
step "What is enforced"
show weir policy get
step "Why billing cannot reach users"
show weir policy trace --src-endpoint billing-0 --dst-endpoint users-0 --dport 80/TCP

step "L7 rules: the seeds' L7 policies replace users-ingress and reco-egress"
rm -f "$RUN/policies/users-ingress.yaml" "$RUN/policies/reco-egress.yaml"
cp lab/demo/l7/*.yaml "$RUN/policies/"
for f in lab/demo/l7/*.yaml; do sed -n 's/^# /   /p' "$f"; done
wait_policy public-api-only
API=$(sed -n 's/^- \(10\.[0-9.]*\)$/\1/p' "$RUN/state/endpoints/production_api-server-0.yaml" | head -n 1)
SERVICE=$(ip_of default_service-0)
http() { # from-endpoint namespace method url [curl args...]
	local from=$1 ns=$2 method=$3 url=$4 code
	shift 4
	code=$(ip netns exec "$PREFIX-$ns-$from" curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
		--connect-to "users:80:$USERS:80" -X "$method" "$@" "$url" || true)
	if [ "$code" = "000" ]; then code="no answer (dropped)"; fi
	printf '   %-15s %-6s %-44s %s\n' "$from" "$method" "$url" "$code"
}
echo "   HTTP/1.x, decided in the kernel:"
http frontend-0 default GET http://users/api/v1/users/1
http frontend-0 default DELETE http://users/api/v1/users/123
http billing-0 default POST http://users/api/v1/payments -d '{"amount":1}'
http billing-0 default GET http://users/api/v1/users/1
http web-frontend-0 production GET "http://$API:8080/api/v1/products/7"
http web-frontend-0 production POST "http://$API:8080/api/v1/orders" -H 'Content-Type: application/json' -H 'X-Request-Id: demo-1' -d '{"item":1}'
http web-frontend-0 production POST "http://$API:8080/api/v1/orders" -d 'item=1'
http frontend-0 default GET "http://$SERVICE/public"
http frontend-0 default GET "http://$SERVICE/private"
http billing-0 default GET "http://$SERVICE/public"
sleep 1

step "gRPC calls, decided call by call by the agent's L7 proxy (catalog-grpc-policy)"
grpc() { # from-endpoint calls: one connection, the calls in order
	printf '   %s, on one connection: %s\n' "$1" "$2"
	ip netns exec "$PREFIX-default-$1" python3 "$RUN/bin/catalog_client.py" \
		--target "$CATALOG:50051" --timeout 2 --calls "$2" | sed 's/^/      /'
}
grpc reco-0 get:1,update:1:-1,get:2
grpc inventory-0 update:1:-2,get:1
sleep 1

step "HTTP requests and responses, as Hubble shows L7 flows"
show weir observe -t l7 --last 30
step "The gRPC calls: service and method in the URL, grpc-status in the response"
show weir observe -t l7 --http-path '/com\.example\.catalog\..*' --last 12
step "Only the denied DELETE and the 403 the client received"
show weir observe -t l7 --http-method DELETE
step "Request headers the agent reports (--http-flow-headers), selected with --http-header"
show weir observe -t l7 --http-header content-type:application/json -o jsonpb \
	--field-mask source.pod_name,destination.pod_name,verdict,l7.http
step "The HTTP rules of users' ingress"
show weir policy get --endpoint users-0
