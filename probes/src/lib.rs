//! weir's eBPF datapath: the C programs in `bpf/`, compiled by `build.rs` with clang and
//! embedded here, and the Rust mirror of their kernel/user ABI (`abi`).
//!
//! This crate and the loader are the only places with `unsafe` code: the `Pod` impls and the
//! ring-buffer record decoding in `abi`.

pub mod abi;

/// The datapath object: programs `from_container` and `to_container` (endpoints),
/// `from_netdev` (node devices) and every `weir_*` map (docs/maps.md).
pub static BPF_LXC: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bpf_lxc.o"));

/// Utility programs: `pass` passes every packet (the benchmarks' baseline); `clone_ingress` and
/// `read_bytes` are the benchmarks' floors (a packet cloned into its device's ingress; each byte
/// of a TCP segment's payload loaded once); `read_jiffies` stores the kernel's jiffies in map `weir_jiffies` when
/// test-run.
pub static BPF_EMPTY: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bpf_empty.o"));

/// Names of the programs in [`BPF_LXC`].
pub const PROG_FROM_CONTAINER: &str = "from_container";
pub const PROG_TO_CONTAINER: &str = "to_container";
pub const PROG_FROM_NETDEV: &str = "from_netdev";

/// Names of the maps in [`BPF_LXC`].
pub mod maps {
    pub const CONFIG: &str = "weir_config";
    pub const ENDPOINTS: &str = "weir_endpoints";
    pub const IPCACHE: &str = "weir_ipcache";
    pub const POLICY: &str = "weir_policy";
    pub const CT: &str = "weir_ct";
    pub const DROP_AGG: &str = "weir_drop_agg";
    pub const FRAG: &str = "weir_frag";
    pub const EVENTS: &str = "weir_events";
    pub const LOST: &str = "weir_lost";
    pub const HTTP_DFA: &str = "weir_http_dfa";
    pub const HTTP_SETS: &str = "weir_http_sets";
    pub const HTTP_CONN: &str = "weir_http_conn";
    pub const HTTP_SCRATCH: &str = "weir_http_scratch";
    pub const HTTP_ANSWER_BUF: &str = "weir_http_answer_buf";
    pub const PROXY_LISTENER: &str = "weir_proxy_listener";
    pub const NETDEV_PROXY: &str = "weir_netdev_proxy";
    /// Every map, in the order the loader pins them.
    pub const ALL: &[&str] = &[
        CONFIG,
        ENDPOINTS,
        IPCACHE,
        POLICY,
        CT,
        DROP_AGG,
        FRAG,
        EVENTS,
        LOST,
        HTTP_DFA,
        HTTP_SETS,
        HTTP_CONN,
        HTTP_SCRATCH,
        HTTP_ANSWER_BUF,
        PROXY_LISTENER,
        NETDEV_PROXY,
    ];
}

/// Name of the runtime-configuration global (`struct weir_runtime_config`).
pub const RUNTIME_CONFIG_GLOBAL: &str = "weir_runtime";
