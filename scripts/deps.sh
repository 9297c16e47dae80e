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
	weir_install_rust
}
