#!/usr/bin/env bash
# Runs every weir test. As root (or with CI=true) the privileged tests run too: eBPF programs
# in the kernel, network-namespace labs with real traffic. `.ci/run` calls this script.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
weir_deps
if [ "${CI:-}" = "true" ]; then
	weir_need_root "the test suite under CI=true"
fi
if [ "$(id -u)" -eq 0 ]; then
	weir_mount_bpffs
fi
cargo fmt --all -- --check
cargo test --workspace --locked --no-fail-fast "$@"
