//! Rust mirror of `include/weir/abi.h`. Every struct is `#[repr(C)]` with explicit padding and
//! the same field names as in C; `const` assertions pin sizes here, and `tests/abi_layout.rs`
//! compares sizes and offsets with the BTF of the compiled object, so drift fails a test.

use std::mem::{offset_of, size_of};

pub const ABI_VERSION: u32 = 9;

// ---- Events --------------------------------------------------------------------------------

pub const EVENT_DROP: u8 = 1;
pub const EVENT_TRACE: u8 = 4;
pub const EVENT_POLICY_VERDICT: u8 = 5;
pub const EVENT_L7: u8 = 129;
pub const EVENT_VERSION: u8 = 1;

/// Drop reasons: values of Hubble's `flow.DropReason`.
pub mod drop_reason {
    pub const INVALID_SOURCE_IP: u16 = 132;
    pub const POLICY_DENIED: u16 = 133;
    pub const INVALID_PACKET: u16 = 134;
    pub const CT_INVALID_HDR: u16 = 135;
    pub const FRAG_NOT_FOUND: u16 = 175;
    pub const POLICY_DENY: u16 = 181;
    pub const SOCKET_LOOKUP_FAILED: u16 = 178;
    pub const SOCKET_ASSIGN_FAILED: u16 = 179;
    pub const PROXY_UNSUPPORTED: u16 = 180;
    pub const EP_NOT_READY: u16 = 203;
}

/// Trace observation points (the monitor's sub_type numbering).
pub mod obs_point {
    pub const TO_ENDPOINT: u8 = 0;
    pub const TO_PROXY: u8 = 1;
    pub const TO_STACK: u8 = 3;
    pub const FROM_ENDPOINT: u8 = 5;
}

/// Trace reasons (Hubble's `flow.TraceReason`).
pub mod trace_reason {
    pub const NEW: u8 = 1;
    pub const ESTABLISHED: u8 = 2;
    pub const REPLY: u8 = 3;
    pub const RELATED: u8 = 4;
}

pub const DIR_INGRESS: u8 = 1;
pub const DIR_EGRESS: u8 = 2;

pub const EVF_IPV6: u8 = 0x01;
pub const EVF_REPLY: u8 = 0x02;
pub const EVF_AUDIT: u8 = 0x04;
pub const EVF_FRAGMENT: u8 = 0x08;

pub const VERDICT_ALLOWED: u8 = 0;
pub const VERDICT_DENIED: u8 = 1;

/// `struct weir_flow_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowEvent {
    pub r#type: u8,
    pub version: u8,
    pub obs_point: u8,
    pub flags: u8,
    pub direction: u8,
    pub trace_reason: u8,
    pub match_type: u8,
    pub protocol: u8,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub verdict: u8,
    pub drop_reason: u16,
    pub reserved_0: u16,
    pub ifindex: u32,
    pub ep_id: u32,
    pub src_identity: u32,
    pub dst_identity: u32,
    pub rule_set: u32,
    pub count: u32,
    pub pkt_len: u32,
    pub reserved_1: u32,
    pub ts_boot_ns: u64,
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub l7_ref: u32,
}

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("event of type {type} is {len} bytes, needs {need}")]
    Truncated { r#type: u8, len: usize, need: usize },
    #[error("unknown event type {0}")]
    UnknownType(u8),
    #[error("event type {type} has unknown version {version}")]
    UnknownVersion { r#type: u8, version: u8 },
}

impl FlowEvent {
    /// Decodes a ring-buffer record: switches on the type byte, checks the version and length.
    pub fn decode(bytes: &[u8]) -> Result<FlowEvent, DecodeError> {
        let Some(&ty) = bytes.first() else {
            return Err(DecodeError::Truncated {
                r#type: 0,
                len: 0,
                need: 1,
            });
        };
        match ty {
            EVENT_DROP | EVENT_TRACE | EVENT_POLICY_VERDICT => {}
            other => return Err(DecodeError::UnknownType(other)),
        }
        let need = size_of::<FlowEvent>();
        if bytes.len() < need {
            return Err(DecodeError::Truncated {
                r#type: ty,
                len: bytes.len(),
                need,
            });
        }
        if bytes[1] != EVENT_VERSION {
            return Err(DecodeError::UnknownVersion {
                r#type: ty,
                version: bytes[1],
            });
        }
        // SAFETY: FlowEvent is repr(C) plain old data (integers and byte arrays, every bit
        // pattern valid) and `bytes` holds at least size_of::<FlowEvent>() bytes;
        // read_unaligned copes with any alignment of the ring-buffer record.
        Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<FlowEvent>()) })
    }

    /// The event's bytes as the kernel writes them (fixtures and benchmarks).
    pub fn to_bytes(&self) -> [u8; size_of::<FlowEvent>()] {
        // SAFETY: FlowEvent is repr(C) with explicit padding only, so all its bytes are
        // initialised; the array has exactly its size.
        unsafe { std::mem::transmute_copy(self) }
    }
}

// ---- Runtime configuration ----------------------------------------------------------------

/// `struct weir_runtime_config` (the `weir_runtime` global in `.rodata`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RuntimeConfig {
    pub trace_interval_jiffies: u64,
    pub drop_interval_jiffies: u64,
    pub ct_lifetime_tcp_jiffies: u64,
    pub ct_lifetime_syn_jiffies: u64,
    pub ct_lifetime_close_jiffies: u64,
    pub ct_lifetime_other_jiffies: u64,
    pub policy_verdict_events: u32,
    pub wake_bytes: u32,
}

// ---- Maps ----------------------------------------------------------------------------------

/// `struct weir_config`: value of `weir_config[0]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Config {
    pub policy_gen: u32,
    pub reserved_0: u32,
}

pub const EP_ENFORCE_INGRESS: u32 = 0x01;
pub const EP_ENFORCE_EGRESS: u32 = 0x02;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EndpointSlot {
    pub identity: u32,
    pub flags: u32,
    pub ingress_selecting: u32,
    pub egress_selecting: u32,
}

/// `struct weir_endpoint`: value of `weir_endpoints[ifindex]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub ep_id: u32,
    pub reserved_0: u32,
    pub ipv4: [u8; 4],
    pub ipv6: [u8; 16],
    pub slot: [EndpointSlot; 2],
}

pub const IPCACHE_FIXED_BITS: u32 = 32;

/// Data part of `struct weir_ipcache_key` (aya's `lpm_trie::Key` adds `prefixlen`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct IpcacheKey {
    pub slot: u8,
    pub family: u8,
    pub reserved_0: u16,
    pub addr: [u8; 16],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpcacheValue {
    pub identity: u32,
    pub ep_id: u32,
}

pub const POLICY_FIXED_BITS: u32 = 96;
pub const POLICY_FULL_BITS: u32 = 120;

/// Data part of `struct weir_policy_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub struct PolicyKey {
    pub slot: u8,
    pub direction: u8,
    pub reserved_0: u16,
    pub ep_id: u32,
    pub identity: u32,
    pub protocol: u8,
    pub dport: [u8; 2],
    pub reserved_1: u8,
}

pub const POLICY_DENY: u8 = 0x01;
pub const POLICY_AUDIT: u8 = 0x02;
pub const POLICY_L7_PROXY: u8 = 0x04;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicyValue {
    pub flags: u8,
    pub match_type: u8,
    pub reserved_0: u16,
    pub rule_set: u32,
    pub l7_rules: u32,
    pub reserved_1: u32,
}

/// `struct weir_ct_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct CtKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub protocol: u8,
    pub direction: u8,
    pub family: u8,
    pub reserved_0: u8,
    pub ifindex: u32,
}

pub const CT_CLOSING_FWD: u8 = 0x01;
pub const CT_CLOSING_REV: u8 = 0x02;
pub const CT_RST: u8 = 0x04;
pub const CT_SEEN_REPLY: u8 = 0x08;
pub const CT_REMOTE_LOCAL: u8 = 0x10;
pub const CT_AUDIT: u8 = 0x20;
pub const CT_PROXY: u8 = 0x40;

pub const MARK_MAGIC_MASK: u32 = 0x0f00;
pub const MARK_TO_PROXY: u32 = 0x0200;
pub const MARK_FROM_PROXY: u32 = 0x0b00;
pub const PROXY_LISTENER_V4: u32 = 0;
pub const PROXY_LISTENER_V6: u32 = 1;

/// `struct weir_ct_entry`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CtEntry {
    pub created: u64,
    pub expires: u64,
    pub last_report: [u64; 2],
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    pub unreported: [u32; 2],
    pub policy_gen: u32,
    pub rule_set: u32,
    pub remote_identity: u32,
    pub flags: u8,
    pub match_type: u8,
    pub tcp_seen: [u8; 2],
    pub tcp_reported: [u8; 2],
    pub l7_flags: u8,
    pub reserved_0: u8,
    pub l7_set: u32,
    /// 1 + the index of the connection's slot in `weir_http_conn`; 0: none.
    pub http_slot: u32,
    /// The endpoint's id and identity when the connection was decided (for HTTP records).
    pub ep_id: u32,
    pub local_identity: u32,
}

pub const CT_L7_DENIED: u8 = 0x01;

/// `struct weir_drop_agg`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropAgg {
    pub last_report: u64,
    pub suppressed: u32,
    pub reserved_0: u32,
}

/// `struct weir_frag_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragKey {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    pub id: u32,
    pub protocol: u8,
    pub family: u8,
    pub reserved_0: u16,
}

/// `struct weir_frag_value`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FragValue {
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u8,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub reserved_0: u8,
}

// ---- In-kernel HTTP/1.x -------------------------------------------------------------------

pub const HTTP_MAX_SETS: u32 = 64;
pub const HTTP_MAX_RULES: usize = 48;
pub const HTTP_MAX_REQS: usize = 48;
pub const HTTP_MAX_SLOTS: usize = 32;
pub const DFA_STATES: usize = 256;
pub const DFA_CLASSES: usize = 64;
pub const HTTP_MAX_HEAD: usize = 8192;
pub const DFA_METHOD: u32 = 0;
pub const DFA_PATH: u32 = 1;
pub const DFA_NAME: u32 = 2;
pub const DFA_VALUE: u32 = 3;
pub const HTTP_LINE_CAP: usize = 256;
pub const HTTP_HOST_CAP: usize = 64;
pub const HTTP_HDRS_CAP: usize = 128;
/// Captured header values: a value starts with `HTTP_HDR_MARK` + its name's index and ends
/// with `HTTP_HDR_END`.
pub const HTTP_HDR_MARK: u8 = 0x10;
pub const HTTP_HDR_END: u8 = 0x1f;
/// Name DFA: bits 56..59 hold 1 + the index of a captured header name.
pub const HTTP_CAPTURE_SHIFT: u32 = 56;
pub const HTTP_CAPTURE_MASK: u64 = 0xf << HTTP_CAPTURE_SHIFT;
pub const HTTP_PENDING: usize = 8;
pub const HTTP_BIT_WELLFORMED: u64 = 1 << 63;
pub const HTTP_BIT_CL_VALUE: u64 = 1 << 62;
pub const HTTP_BIT_CHUNKED: u64 = 1 << 61;
pub const HTTP_SLOT_CONTENT_LENGTH: usize = 0;
pub const HTTP_SLOT_TRANSFER_ENCODING: usize = 1;
pub const HTTP_SLOT_HOST: usize = 2;
pub const HTTP_SLOT_UPGRADE: usize = 3;
pub const HP_SYNCED: u8 = 0x01;
pub const HP_HAS_CL: u8 = 0x02;
pub const HP_CHUNKED: u8 = 0x04;
pub const HP_HOST: u8 = 0x08;
pub const HP_LOST: u8 = 0x10;
pub const HP_CAPTURE: u8 = 0x20;
pub const HP_SKIP: u8 = 0x40;
pub const L7_REQUEST: u8 = 1;
pub const L7_RESPONSE: u8 = 2;
/// An L7 record's header: [`L7Event`] up to `data` (a response's record is the header alone).
pub const L7_HEADER_LEN: usize = 128;
/// `weir_l7_event.data`: room for the request line, Host and captured header values.
pub const L7_DATA_CAP: usize = HTTP_LINE_CAP + HTTP_HOST_CAP + HTTP_HDRS_CAP;
/// `weir_l7_event.rule` when no rule allowed the request.
pub const L7_NO_RULE: u32 = u32::MAX;

/// Index of a DFA in `weir_http_dfa`.
pub fn http_dfa_index(slot: u8, set: u32, kind: u32) -> u32 {
    (u32::from(slot) * HTTP_MAX_SETS + set) * 4 + kind
}

/// Index of a set in `weir_http_sets`.
pub fn http_set_index(slot: u8, set: u32) -> u32 {
    u32::from(slot) * HTTP_MAX_SETS + set
}

/// `struct weir_http_dfa`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpDfa {
    pub classes: [u8; 256],
    pub accept: [u64; DFA_STATES],
    pub trans: [u8; DFA_STATES * DFA_CLASSES],
    pub start: u8,
    pub reserved_0: [u8; 7],
}

/// `struct weir_http_set`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSet {
    pub rule_bits: u64,
    pub slot_reqs: [u64; HTTP_MAX_SLOTS],
    pub needs: [u64; HTTP_MAX_REQS],
}

/// `struct weir_http_parser`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HttpParser {
    pub remaining: u64,
    pub method_mask: u64,
    pub path_mask: u64,
    pub seen: u64,
    pub number: u64,
    pub next_seq: u32,
    pub head_len: u32,
    pub slots: u32,
    pub status: u16,
    pub phase: u8,
    pub state: u8,
    pub value_state: u8,
    pub flags: u8,
    pub pos: u8,
    pub digits: u8,
    pub skip_from: u32,
}

/// `struct weir_http_conn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpConn {
    pub req: HttpParser,
    pub resp: HttpParser,
    pub pending_ts: [u64; HTTP_PENDING],
    pub requests: u32,
    pub responses: u32,
    pub pending_head_flags: u8,
    pub line_len: u8,
    pub host_len: u8,
    pub host_raw: u8,
    pub method_len: u8,
    pub version: u8,
    pub hdrs_len: u8,
    pub reserved_0: u8,
    pub resync_seq: u32,
    pub reserved_1: u32,
    pub line: [u8; HTTP_LINE_CAP],
    pub host: [u8; HTTP_HOST_CAP],
    pub hdrs: [u8; HTTP_HDRS_CAP],
}

/// Slots of `weir_http_conn`.
pub const HTTP_SLOTS: u32 = 16384;

/// `struct weir_http_slot`: a value of `weir_http_conn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSlot {
    pub owner: CtKey,
    pub claim: u32,
    pub expires: u64,
    pub conn: HttpConn,
}

/// `struct weir_l7_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L7Event {
    pub flow: FlowEvent,
    pub l7_type: u8,
    pub version: u8,
    pub status: u16,
    pub l7_set: u32,
    pub rule: u32,
    pub number: u32,
    pub latency_ns: u64,
    pub line_len: u16,
    pub host_len: u16,
    pub method_len: u8,
    pub hdrs_len: u8,
    pub reserved_0: [u8; 2],
    /// With a Host, its value in the first `HTTP_HOST_CAP` bytes; then `line_len` bytes of
    /// request line; then `hdrs_len` bytes of header values. The record ends there.
    pub data: [u8; L7_DATA_CAP],
}

/// A decoded ring-buffer record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Drop, trace or policy verdict.
    Flow(FlowEvent),
    /// An HTTP request or response (`EVENT_L7`).
    L7(Box<L7Event>),
}

impl Event {
    /// Decodes any record the datapath writes, by its type byte.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        match bytes.first() {
            Some(&EVENT_L7) => L7Event::decode(bytes).map(|e| Event::L7(Box::new(e))),
            _ => FlowEvent::decode(bytes).map(Event::Flow),
        }
    }
}

impl L7Event {
    /// Decodes an L7 ring-buffer record (type `EVENT_L7`).
    pub fn decode(bytes: &[u8]) -> Result<L7Event, DecodeError> {
        let mut ev = L7Event::zeroed();
        ev.decode_from(bytes)?;
        Ok(ev)
    }

    /// An event of zero bytes.
    pub fn zeroed() -> L7Event {
        // SAFETY: plain old data: all zeros is a valid value.
        unsafe { std::mem::zeroed() }
    }

    /// Decodes an L7 record into `self`, which a reader reuses from record to record (no
    /// allocation, and only the record's bytes are copied): the header, then `data` up to the end
    /// of the header values.
    pub fn decode_from(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let truncated = |need| DecodeError::Truncated {
            r#type: EVENT_L7,
            len: bytes.len(),
            need,
        };
        if bytes.len() < L7_HEADER_LEN {
            return Err(truncated(L7_HEADER_LEN));
        }
        if bytes[1] != EVENT_VERSION {
            return Err(DecodeError::UnknownVersion {
                r#type: EVENT_L7,
                version: bytes[1],
            });
        }
        // SAFETY: L7Event is repr(C) plain old data (every bit pattern valid) and starts with
        // its L7_HEADER_LEN-byte header, which `bytes` holds; byte copies need no alignment.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (self as *mut L7Event).cast::<u8>(),
                L7_HEADER_LEN,
            );
        }
        let (line, host, hdrs) = self.lens();
        let need = L7_HEADER_LEN + self.line_at() + line + hdrs;
        if usize::from(self.line_len) != line
            || usize::from(self.host_len) != host
            || usize::from(self.hdrs_len) != hdrs
            || bytes.len() < need
        {
            // Lengths over their caps cannot come from the datapath: as bad as a short record.
            return Err(truncated(need));
        }
        self.data[..need - L7_HEADER_LEN].copy_from_slice(&bytes[L7_HEADER_LEN..need]);
        Ok(())
    }

    /// The lengths of the request line, Host and header values, each within its cap.
    fn lens(&self) -> (usize, usize, usize) {
        (
            usize::from(self.line_len).min(HTTP_LINE_CAP - 1),
            usize::from(self.host_len).min(HTTP_HOST_CAP),
            usize::from(self.hdrs_len).min(HTTP_HDRS_CAP),
        )
    }

    /// Where the request line starts in `data`: after the Host's room when there is a Host.
    fn line_at(&self) -> usize {
        if self.host_len > 0 { HTTP_HOST_CAP } else { 0 }
    }

    /// The request line bytes captured (method SP target).
    pub fn line(&self) -> &[u8] {
        let (line, _, _) = self.lens();
        &self.data[self.line_at()..self.line_at() + line]
    }

    pub fn host(&self) -> &[u8] {
        let (_, host, _) = self.lens();
        &self.data[..host]
    }

    /// The captured header values as the datapath wrote them (marks included).
    pub fn hdrs(&self) -> &[u8] {
        let (line, _, hdrs) = self.lens();
        let at = self.line_at() + line;
        &self.data[at..at + hdrs]
    }

    /// Sets the request line, Host and captured header values (fixtures and tests).
    ///
    /// # Panics
    /// When one is longer than the datapath captures.
    pub fn set_data(&mut self, line: &[u8], host: &[u8], hdrs: &[u8]) {
        assert!(
            line.len() < HTTP_LINE_CAP
                && host.len() <= HTTP_HOST_CAP
                && hdrs.len() <= HTTP_HDRS_CAP
        );
        self.line_len = line.len() as u16;
        self.host_len = host.len() as u16;
        self.hdrs_len = hdrs.len() as u8;
        self.data = [0; L7_DATA_CAP];
        self.data[..host.len()].copy_from_slice(host);
        let at = self.line_at();
        self.data[at..at + line.len()].copy_from_slice(line);
        self.data[at + line.len()..at + line.len() + hdrs.len()].copy_from_slice(hdrs);
    }

    /// The captured header values, as (name index, value with trailing whitespace removed),
    /// in request order; a value cut off at `HTTP_HDRS_CAP` is left out.
    pub fn captured_headers(&self) -> Vec<(usize, &[u8])> {
        let bytes = self.hdrs();
        let mut out = Vec::new();
        let mut rest = bytes;
        while let Some(start) = rest
            .iter()
            .position(|b| (HTTP_HDR_MARK..HTTP_HDR_END).contains(b))
        {
            let index = usize::from(rest[start] - HTTP_HDR_MARK);
            rest = &rest[start + 1..];
            let Some(end) = rest.iter().position(|&b| b == HTTP_HDR_END) else {
                break;
            };
            let value = &rest[..end];
            let trimmed = value.len()
                - value
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b' ' || b == b'\t')
                    .count();
            // The datapath captures only bytes a value may hold; anything else is not reported.
            if value
                .iter()
                .all(|&b| (b >= 0x20 || b == b'\t') && b != 0x7f)
            {
                out.push((index, &value[..trimmed]));
            }
            rest = &rest[end + 1..];
        }
        out
    }

    /// The record's bytes as the datapath writes them (fixtures and tests): the header, then
    /// the captured bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        // SAFETY: repr(C) with explicit padding only: every byte is initialised.
        let raw: [u8; size_of::<L7Event>()] = unsafe { std::mem::transmute_copy(self) };
        let (line, _, hdrs) = self.lens();
        raw[..L7_HEADER_LEN + self.line_at() + line + hdrs].to_vec()
    }
}

// SAFETY: every type below is repr(C), contains only integers and integer arrays (any bit
// pattern is valid) and has no implicit padding (the size assertions below and the BTF test
// check that the explicit fields cover every byte).
unsafe impl aya::Pod for FlowEvent {}
unsafe impl aya::Pod for RuntimeConfig {}
unsafe impl aya::Pod for Config {}
unsafe impl aya::Pod for Endpoint {}
unsafe impl aya::Pod for IpcacheKey {}
unsafe impl aya::Pod for IpcacheValue {}
unsafe impl aya::Pod for PolicyKey {}
unsafe impl aya::Pod for PolicyValue {}
unsafe impl aya::Pod for CtKey {}
unsafe impl aya::Pod for CtEntry {}
unsafe impl aya::Pod for DropAgg {}
unsafe impl aya::Pod for FragKey {}
unsafe impl aya::Pod for FragValue {}
unsafe impl aya::Pod for HttpDfa {}
unsafe impl aya::Pod for HttpSet {}
unsafe impl aya::Pod for HttpParser {}
unsafe impl aya::Pod for HttpConn {}
unsafe impl aya::Pod for HttpSlot {}
unsafe impl aya::Pod for L7Event {}

/// A mirrored struct: its C name, size and the offset of every field, for the BTF check.
pub struct Layout {
    pub c_name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

macro_rules! layout {
    ($c:literal, $t:ty, { $($f:ident),* $(,)? }) => {
        Layout { c_name: $c, size: size_of::<$t>(), fields: &[$((stringify!($f), offset_of!($t, $f))),*] }
    };
}

/// Every mirrored struct. (`prefixlen` of the LPM keys lives in aya's `Key` and is checked as
/// a 4-byte shift of the data part.)
pub const LAYOUTS: &[Layout] = &[
    Layout {
        c_name: "weir_flow_event",
        size: size_of::<FlowEvent>(),
        fields: &[
            ("type", offset_of!(FlowEvent, r#type)),
            ("version", offset_of!(FlowEvent, version)),
            ("obs_point", offset_of!(FlowEvent, obs_point)),
            ("flags", offset_of!(FlowEvent, flags)),
            ("direction", offset_of!(FlowEvent, direction)),
            ("trace_reason", offset_of!(FlowEvent, trace_reason)),
            ("match_type", offset_of!(FlowEvent, match_type)),
            ("protocol", offset_of!(FlowEvent, protocol)),
            ("tcp_flags", offset_of!(FlowEvent, tcp_flags)),
            ("icmp_type", offset_of!(FlowEvent, icmp_type)),
            ("icmp_code", offset_of!(FlowEvent, icmp_code)),
            ("verdict", offset_of!(FlowEvent, verdict)),
            ("drop_reason", offset_of!(FlowEvent, drop_reason)),
            ("reserved_0", offset_of!(FlowEvent, reserved_0)),
            ("ifindex", offset_of!(FlowEvent, ifindex)),
            ("ep_id", offset_of!(FlowEvent, ep_id)),
            ("src_identity", offset_of!(FlowEvent, src_identity)),
            ("dst_identity", offset_of!(FlowEvent, dst_identity)),
            ("rule_set", offset_of!(FlowEvent, rule_set)),
            ("count", offset_of!(FlowEvent, count)),
            ("pkt_len", offset_of!(FlowEvent, pkt_len)),
            ("reserved_1", offset_of!(FlowEvent, reserved_1)),
            ("ts_boot_ns", offset_of!(FlowEvent, ts_boot_ns)),
            ("saddr", offset_of!(FlowEvent, saddr)),
            ("daddr", offset_of!(FlowEvent, daddr)),
            ("sport", offset_of!(FlowEvent, sport)),
            ("dport", offset_of!(FlowEvent, dport)),
            ("l7_ref", offset_of!(FlowEvent, l7_ref)),
        ],
    },
    layout!("weir_runtime_config", RuntimeConfig, {
        trace_interval_jiffies, drop_interval_jiffies, ct_lifetime_tcp_jiffies, ct_lifetime_syn_jiffies,
        ct_lifetime_close_jiffies, ct_lifetime_other_jiffies, policy_verdict_events, wake_bytes,
    }),
    layout!("weir_config", Config, { policy_gen, reserved_0 }),
    layout!("weir_endpoint_slot", EndpointSlot, { identity, flags, ingress_selecting, egress_selecting }),
    layout!("weir_endpoint", Endpoint, { ep_id, reserved_0, ipv4, ipv6, slot }),
    layout!("weir_ipcache_value", IpcacheValue, { identity, ep_id }),
    layout!("weir_policy_value", PolicyValue, { flags, match_type, reserved_0, rule_set, l7_rules, reserved_1 }),
    layout!("weir_ct_key", CtKey, { saddr, daddr, sport, dport, protocol, direction, family, reserved_0, ifindex }),
    layout!("weir_ct_entry", CtEntry, {
        created, expires, last_report, packets, bytes, unreported, policy_gen, rule_set,
        remote_identity, flags, match_type, tcp_seen, tcp_reported, l7_flags, reserved_0, l7_set,
        http_slot, ep_id, local_identity,
    }),
    layout!("weir_http_dfa", HttpDfa, { classes, accept, trans, start, reserved_0 }),
    layout!("weir_http_set", HttpSet, { rule_bits, slot_reqs, needs }),
    layout!("weir_http_parser", HttpParser, {
        remaining, method_mask, path_mask, seen, number, next_seq, head_len, slots, status, phase,
        state, value_state, flags, pos, digits, skip_from,
    }),
    layout!("weir_http_conn", HttpConn, {
        req, resp, pending_ts, requests, responses, pending_head_flags, line_len, host_len,
        host_raw, method_len, version, hdrs_len, reserved_0, resync_seq, reserved_1, line, host,
        hdrs,
    }),
    layout!("weir_http_slot", HttpSlot, { owner, claim, expires, conn }),
    layout!("weir_l7_event", L7Event, {
        flow, l7_type, version, status, l7_set, rule, number, latency_ns, line_len, host_len,
        method_len, hdrs_len, reserved_0, data,
    }),
    layout!("weir_drop_agg", DropAgg, { last_report, suppressed, reserved_0 }),
    layout!("weir_frag_key", FragKey, { saddr, daddr, id, protocol, family, reserved_0 }),
    layout!("weir_frag_value", FragValue, { sport, dport, tcp_flags, icmp_type, icmp_code, reserved_0 }),
];

/// LPM keys: the C struct has a leading `__u32 prefixlen`, the Rust mirror only the data.
pub const LPM_KEY_LAYOUTS: &[Layout] = &[
    layout!("weir_ipcache_key", IpcacheKey, { slot, family, reserved_0, addr }),
    layout!("weir_policy_key", PolicyKey, { slot, direction, reserved_0, ep_id, identity, protocol, dport, reserved_1 }),
];

const _: () = {
    assert!(size_of::<FlowEvent>() == 96);
    assert!(size_of::<RuntimeConfig>() == 56);
    assert!(size_of::<Config>() == 8);
    assert!(size_of::<Endpoint>() == 60);
    assert!(size_of::<IpcacheKey>() == 20);
    assert!(size_of::<IpcacheValue>() == 8);
    assert!(size_of::<PolicyKey>() == 16);
    assert!(size_of::<PolicyValue>() == 16);
    assert!(size_of::<CtKey>() == 44);
    assert!(size_of::<CtEntry>() == 112);
    assert!(size_of::<HttpDfa>() == 18696);
    assert!(size_of::<HttpSet>() == 648);
    assert!(size_of::<L7Event>() == 576);
    assert!(std::mem::offset_of!(L7Event, data) == L7_HEADER_LEN);
    assert!(size_of::<HttpParser>() == 64);
    assert!(size_of::<HttpConn>() == 664);
    assert!(size_of::<HttpSlot>() == 720);
    assert!(size_of::<DropAgg>() == 16);
    assert!(size_of::<FragKey>() == 40);
    assert!(size_of::<FragValue>() == 8);
};
