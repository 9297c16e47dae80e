#!/usr/bin/env bash
# Installs what building and running weir needs, when it is missing, on Debian/Ubuntu.
# Sourced by demo.sh and test.sh; safe to run again.
set -euo pipefail

weir_need_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "weir: $1 needs root (eBPF and network namespaces); run it with sudo" >&2
		exit 1
	fi
}

weir_install_packages() {
	local missing=()
	command -v clang >/dev/null || missing+=(clang)
	command -v llvm-objdump >/dev/null || missing+=(llvm)
	[ -f /usr/include/bpf/bpf_helpers.h ] || missing+=(libbpf-dev)
	[ -f /usr/include/linux/bpf.h ] || missing+=(linux-libc-dev)
	command -v bpftool >/dev/null || missing+=(bpftool)
	command -v ip >/dev/null || missing+=(iproute2)
	command -v nsenter >/dev/null || missing+=(util-linux)
	command -v curl >/dev/null || missing+=(curl)
	command -v python3 >/dev/null || missing+=(python3)
	command -v gcc >/dev/null || missing+=(gcc)
	command -v pkg-config >/dev/null || missing+=(pkg-config)
	if [ ${#missing[@]} -gt 0 ]; then
		echo "weir: installing ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	fi
}

# The lab's gRPC catalog server and client (lab/servers/catalog_grpc.py, catalog_client.py) are
# grpcio, a real gRPC peer, from PyPI. The lab starts them with the `python3` on PATH, so that
# interpreter gets them (Debian's own python3 refuses pip installs without
# PIP_BREAK_SYSTEM_PACKAGES; they go to /usr/local, beside apt's packages, not over them).
WEIR_GRPCIO_VERSION=1.85.3
WEIR_GRPCIO_TOOLS_VERSION=1.85.1

weir_install_python_packages() {
	if python3 -c 'import grpc, grpc_tools' 2>/dev/null; then
		return
	fi
	if ! python3 -m pip --version >/dev/null 2>&1; then
		echo "weir: installing python3-pip" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
	fi
	echo "weir: installing grpcio $WEIR_GRPCIO_VERSION and grpcio-tools $WEIR_GRPCIO_TOOLS_VERSION for $(command -v python3)" >&2
	PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
		python3 -m pip install -q "grpcio==$WEIR_GRPCIO_VERSION" "grpcio-tools==$WEIR_GRPCIO_TOOLS_VERSION"
}

weir_install_rust() {
	if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
		export PATH="$HOME/.cargo/bin:$PATH"
	fi
	if ! command -v cargo >/dev/null; then
		echo "weir: installing the Rust toolchain with rustup" >&2
		curl --proto "=https" --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt >/dev/null
		export PATH="$HOME/.cargo/bin:$PATH"
	fi
}

weir_mount_bpffs() {
	if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
		mount -t bpf bpf /sys/fs/bpf
	fi
}

weir_deps() {
	weir_install_packages
	weir_install_python_packages
	weir_install_rust
}
