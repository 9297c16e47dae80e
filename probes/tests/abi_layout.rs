//! The Rust mirror of the ABI must match the C header: struct sizes and field offsets are
//! compared with the BTF of the compiled object (Cilium's "alignchecker"), and every constant
//! with its `#define` in `include/weir/abi.h`.

use std::collections::BTreeMap;

use weir_probes::abi::{self, LAYOUTS, LPM_KEY_LAYOUTS, Layout};

/// Returns the bytes of an ELF64 little-endian section.
fn elf_section<'a>(elf: &'a [u8], wanted: &str) -> &'a [u8] {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF object");
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 24);
    for i in 0..shnum {
        let h = header(i);
        let name_off = strtab + u32_at(h);
        let end = elf[name_off..].iter().position(|&b| b == 0).unwrap();
        if &elf[name_off..name_off + end] == wanted.as_bytes() {
            let (off, size) = (u64_at(h + 24), u64_at(h + 32));
            return &elf[off..off + size];
        }
    }
    panic!("section {wanted} not found");
}

struct BtfStruct {
    size: usize,
    /// (member name, byte offset)
    members: Vec<(String, usize)>,
}

/// Reads every named struct of a .BTF section (just enough of the format for this check).
fn btf_structs(btf: &[u8]) -> BTreeMap<String, BtfStruct> {
    let u32_at = |o: usize| u32::from_le_bytes(btf[o..o + 4].try_into().unwrap());
    assert_eq!(
        u16::from_le_bytes([btf[0], btf[1]]),
        0xeb9f,
        "bad BTF magic"
    );
    let hdr_len = u32_at(4) as usize;
    let (type_off, type_len) = (u32_at(8) as usize, u32_at(12) as usize);
    let str_off = u32_at(16) as usize;
    let strings = &btf[hdr_len + str_off..];
    let name = |off: u32| -> String {
        let s = &strings[off as usize..];
        String::from_utf8(s[..s.iter().position(|&b| b == 0).unwrap()].to_vec()).unwrap()
    };
    let mut out = BTreeMap::new();
    let mut pos = hdr_len + type_off;
    let end = pos + type_len;
    while pos < end {
        let (name_off, info, size) = (u32_at(pos), u32_at(pos + 4), u32_at(pos + 8));
        let kind = (info >> 24) & 0x1f;
        let vlen = (info & 0xffff) as usize;
        let kind_flag = info >> 31 == 1;
        pos += 12;
        let extra = match kind {
            1 | 14 | 17 => 4,     // INT, VAR, DECL_TAG
            3 => 12,              // ARRAY
            4 | 5 => vlen * 12,   // STRUCT, UNION
            6 | 13 => vlen * 8,   // ENUM, FUNC_PROTO
            15 | 19 => vlen * 12, // DATASEC, ENUM64
            _ => 0,
        };
        if kind == 4 && name_off != 0 && name(name_off).starts_with("weir_") {
            let members = (0..vlen)
                .map(|i| {
                    let m = pos + i * 12;
                    let bits = u32_at(m + 8);
                    let bits = if kind_flag { bits & 0x00ff_ffff } else { bits };
                    assert_eq!(bits % 8, 0, "bitfield in an ABI struct");
                    (name(u32_at(m)), (bits / 8) as usize)
                })
                .collect();
            out.insert(
                name(name_off),
                BtfStruct {
                    size: size as usize,
                    members,
                },
            );
        }
        pos += extra;
    }
    out
}

fn check(layout: &Layout, c: &BtfStruct, shift: usize, problems: &mut Vec<String>) {
    if c.size != layout.size + shift {
        problems.push(format!(
            "struct {}: C size {} != Rust size {} + {shift}",
            layout.c_name, c.size, layout.size
        ));
    }
    let c_members: Vec<_> = c
        .members
        .iter()
        .filter(|(n, _)| shift == 0 || n != "prefixlen")
        .collect();
    let c_names: Vec<&str> = c_members.iter().map(|(n, _)| n.as_str()).collect();
    let rust_names: Vec<&str> = layout.fields.iter().map(|(n, _)| *n).collect();
    if c_names != rust_names {
        problems.push(format!(
            "struct {}: C fields {c_names:?} != Rust fields {rust_names:?}",
            layout.c_name
        ));
        return;
    }
    for ((name, c_off), (_, rust_off)) in c_members.iter().zip(layout.fields) {
        if *c_off != rust_off + shift {
            problems.push(format!(
                "{}.{name}: C offset {c_off} != Rust offset {rust_off} + {shift}",
                layout.c_name
            ));
        }
    }
}

#[test]
fn rust_structs_match_the_btf_of_the_compiled_object() {
    let structs = btf_structs(elf_section(weir_probes::BPF_LXC, ".BTF"));
    let mut problems = Vec::new();
    for (layouts, shift) in [(LAYOUTS, 0), (LPM_KEY_LAYOUTS, 4)] {
        for layout in layouts {
            match structs.get(layout.c_name) {
                Some(c) => check(layout, c, shift, &mut problems),
                None => problems.push(format!(
                    "struct {} is not in the object's BTF",
                    layout.c_name
                )),
            }
        }
    }
    for key in ["weir_ipcache_key", "weir_policy_key"] {
        if structs[key].members.first().map(|(n, o)| (n.as_str(), *o)) != Some(("prefixlen", 0)) {
            problems.push(format!("{key} must start with prefixlen"));
        }
    }
    assert!(problems.is_empty(), "ABI drift:\n{}", problems.join("\n"));
}

#[test]
fn constants_match_the_header() {
    let header = include_str!("../include/weir/abi.h");
    let defines: BTreeMap<&str, i64> = header
        .lines()
        .filter_map(|l| {
            let mut it = l.strip_prefix("#define ")?.split_whitespace();
            let (name, value) = (it.next()?, it.next()?);
            let v = match value.strip_prefix("0x") {
                Some(hex) => i64::from_str_radix(hex, 16).ok()?,
                None => value.parse().ok()?,
            };
            Some((name, v))
        })
        .collect();
    let rust: &[(&str, i64)] = &[
        ("WEIR_ABI_VERSION", abi::ABI_VERSION as i64),
        ("WEIR_HTTP_SLOTS", abi::HTTP_SLOTS as i64),
        ("WEIR_EVENT_DROP", abi::EVENT_DROP as i64),
        ("WEIR_EVENT_TRACE", abi::EVENT_TRACE as i64),
        (
            "WEIR_EVENT_POLICY_VERDICT",
            abi::EVENT_POLICY_VERDICT as i64,
        ),
        ("WEIR_EVENT_VERSION", abi::EVENT_VERSION as i64),
        (
            "WEIR_DROP_INVALID_SOURCE_IP",
            abi::drop_reason::INVALID_SOURCE_IP as i64,
        ),
        (
            "WEIR_DROP_POLICY_DENIED",
            abi::drop_reason::POLICY_DENIED as i64,
        ),
        (
            "WEIR_DROP_INVALID_PACKET",
            abi::drop_reason::INVALID_PACKET as i64,
        ),
        (
            "WEIR_DROP_CT_INVALID_HDR",
            abi::drop_reason::CT_INVALID_HDR as i64,
        ),
        (
            "WEIR_DROP_FRAG_NOT_FOUND",
            abi::drop_reason::FRAG_NOT_FOUND as i64,
        ),
        (
            "WEIR_DROP_POLICY_DENY",
            abi::drop_reason::POLICY_DENY as i64,
        ),
        (
            "WEIR_DROP_EP_NOT_READY",
            abi::drop_reason::EP_NOT_READY as i64,
        ),
        ("WEIR_OBS_TO_ENDPOINT", abi::obs_point::TO_ENDPOINT as i64),
        ("WEIR_OBS_TO_STACK", abi::obs_point::TO_STACK as i64),
        (
            "WEIR_OBS_FROM_ENDPOINT",
            abi::obs_point::FROM_ENDPOINT as i64,
        ),
        ("WEIR_TRACE_NEW", abi::trace_reason::NEW as i64),
        (
            "WEIR_TRACE_ESTABLISHED",
            abi::trace_reason::ESTABLISHED as i64,
        ),
        ("WEIR_TRACE_REPLY", abi::trace_reason::REPLY as i64),
        ("WEIR_TRACE_RELATED", abi::trace_reason::RELATED as i64),
        ("WEIR_DIR_INGRESS", abi::DIR_INGRESS as i64),
        ("WEIR_DIR_EGRESS", abi::DIR_EGRESS as i64),
        ("WEIR_EVF_IPV6", abi::EVF_IPV6 as i64),
        ("WEIR_EVF_REPLY", abi::EVF_REPLY as i64),
        ("WEIR_EVF_AUDIT", abi::EVF_AUDIT as i64),
        ("WEIR_EVF_FRAGMENT", abi::EVF_FRAGMENT as i64),
        ("WEIR_VERDICT_ALLOWED", abi::VERDICT_ALLOWED as i64),
        ("WEIR_VERDICT_DENIED", abi::VERDICT_DENIED as i64),
        ("WEIR_EP_ENFORCE_INGRESS", abi::EP_ENFORCE_INGRESS as i64),
        ("WEIR_EP_ENFORCE_EGRESS", abi::EP_ENFORCE_EGRESS as i64),
        ("WEIR_IPCACHE_FIXED_BITS", abi::IPCACHE_FIXED_BITS as i64),
        ("WEIR_POLICY_FIXED_BITS", abi::POLICY_FIXED_BITS as i64),
        ("WEIR_POLICY_FULL_BITS", abi::POLICY_FULL_BITS as i64),
        ("WEIR_POLICY_DENY", abi::POLICY_DENY as i64),
        ("WEIR_POLICY_AUDIT", abi::POLICY_AUDIT as i64),
        ("WEIR_CT_CLOSING_FWD", abi::CT_CLOSING_FWD as i64),
        ("WEIR_CT_CLOSING_REV", abi::CT_CLOSING_REV as i64),
        ("WEIR_CT_RST", abi::CT_RST as i64),
        ("WEIR_CT_SEEN_REPLY", abi::CT_SEEN_REPLY as i64),
        ("WEIR_CT_REMOTE_LOCAL", abi::CT_REMOTE_LOCAL as i64),
        ("WEIR_CT_AUDIT", abi::CT_AUDIT as i64),
        ("WEIR_CT_L7_DENIED", abi::CT_L7_DENIED as i64),
        ("WEIR_CT_PROXY", abi::CT_PROXY as i64),
        ("WEIR_POLICY_L7_PROXY", abi::POLICY_L7_PROXY as i64),
        ("WEIR_OBS_TO_PROXY", abi::obs_point::TO_PROXY as i64),
        ("WEIR_MARK_MAGIC_MASK", abi::MARK_MAGIC_MASK as i64),
        ("WEIR_MARK_TO_PROXY", abi::MARK_TO_PROXY as i64),
        ("WEIR_MARK_FROM_PROXY", abi::MARK_FROM_PROXY as i64),
        ("WEIR_PROXY_LISTENER_V4", abi::PROXY_LISTENER_V4 as i64),
        ("WEIR_PROXY_LISTENER_V6", abi::PROXY_LISTENER_V6 as i64),
        (
            "WEIR_DROP_SOCKET_LOOKUP_FAILED",
            abi::drop_reason::SOCKET_LOOKUP_FAILED as i64,
        ),
        (
            "WEIR_DROP_SOCKET_ASSIGN_FAILED",
            abi::drop_reason::SOCKET_ASSIGN_FAILED as i64,
        ),
        ("WEIR_EVENT_L7", abi::EVENT_L7 as i64),
        (
            "WEIR_DROP_PROXY_UNSUPPORTED",
            abi::drop_reason::PROXY_UNSUPPORTED as i64,
        ),
        ("WEIR_HTTP_MAX_SETS", abi::HTTP_MAX_SETS as i64),
        ("WEIR_HTTP_MAX_RULES", abi::HTTP_MAX_RULES as i64),
        ("WEIR_HTTP_MAX_REQS", abi::HTTP_MAX_REQS as i64),
        ("WEIR_HTTP_MAX_SLOTS", abi::HTTP_MAX_SLOTS as i64),
        ("WEIR_DFA_STATES", abi::DFA_STATES as i64),
        ("WEIR_DFA_CLASSES", abi::DFA_CLASSES as i64),
        ("WEIR_HTTP_MAX_HEAD", abi::HTTP_MAX_HEAD as i64),
        ("WEIR_DFA_METHOD", abi::DFA_METHOD as i64),
        ("WEIR_DFA_PATH", abi::DFA_PATH as i64),
        ("WEIR_DFA_NAME", abi::DFA_NAME as i64),
        ("WEIR_DFA_VALUE", abi::DFA_VALUE as i64),
        (
            "WEIR_HTTP_SLOT_CONTENT_LENGTH",
            abi::HTTP_SLOT_CONTENT_LENGTH as i64,
        ),
        (
            "WEIR_HTTP_SLOT_TRANSFER_ENCODING",
            abi::HTTP_SLOT_TRANSFER_ENCODING as i64,
        ),
        ("WEIR_HTTP_SLOT_HOST", abi::HTTP_SLOT_HOST as i64),
        ("WEIR_HTTP_SLOT_UPGRADE", abi::HTTP_SLOT_UPGRADE as i64),
        ("WEIR_HP_SYNCED", abi::HP_SYNCED as i64),
        ("WEIR_HP_HAS_CL", abi::HP_HAS_CL as i64),
        ("WEIR_HP_CHUNKED", abi::HP_CHUNKED as i64),
        ("WEIR_HP_HOST", abi::HP_HOST as i64),
        ("WEIR_HP_LOST", abi::HP_LOST as i64),
        ("WEIR_HP_CAPTURE", abi::HP_CAPTURE as i64),
        ("WEIR_HP_SKIP", abi::HP_SKIP as i64),
        ("WEIR_HTTP_PENDING", abi::HTTP_PENDING as i64),
        ("WEIR_HTTP_LINE_CAP", abi::HTTP_LINE_CAP as i64),
        ("WEIR_HTTP_HOST_CAP", abi::HTTP_HOST_CAP as i64),
        ("WEIR_HTTP_HDRS_CAP", abi::HTTP_HDRS_CAP as i64),
        ("WEIR_L7_HEADER_LEN", abi::L7_HEADER_LEN as i64),
        ("WEIR_L7_DATA_CAP", abi::L7_DATA_CAP as i64),
        ("WEIR_HTTP_HDR_MARK", abi::HTTP_HDR_MARK as i64),
        ("WEIR_HTTP_HDR_END", abi::HTTP_HDR_END as i64),
        ("WEIR_HTTP_CAPTURE_SHIFT", abi::HTTP_CAPTURE_SHIFT as i64),
        ("WEIR_L7_REQUEST", abi::L7_REQUEST as i64),
        ("WEIR_L7_RESPONSE", abi::L7_RESPONSE as i64),
    ];
    let mut problems = Vec::new();
    for (name, value) in rust {
        match defines.get(name) {
            Some(v) if v == value => {}
            Some(v) => problems.push(format!("{name}: header {v}, Rust {value}")),
            None => problems.push(format!("{name}: not defined in abi.h")),
        }
    }
    for name in defines
        .keys()
        .filter(|n| n.starts_with("WEIR_") && *n != &"WEIR_ABI_H")
    {
        if !rust.iter().any(|(r, _)| r == name) {
            problems.push(format!("{name}: defined in abi.h but not mirrored in Rust"));
        }
    }
    assert!(
        problems.is_empty(),
        "constant drift:\n{}",
        problems.join("\n")
    );
}

#[test]
fn event_round_trips_through_bytes_and_rejects_bad_records() {
    let ev = abi::FlowEvent {
        r#type: abi::EVENT_DROP,
        version: abi::EVENT_VERSION,
        drop_reason: abi::drop_reason::POLICY_DENIED,
        sport: 41234,
        dport: 80,
        ..Default::default()
    };
    let bytes = ev.to_bytes();
    assert_eq!(abi::FlowEvent::decode(&bytes), Ok(ev));
    assert_eq!(
        abi::FlowEvent::decode(&bytes[..50]),
        Err(abi::DecodeError::Truncated {
            r#type: 1,
            len: 50,
            need: 96
        })
    );
    let mut bad = bytes;
    bad[0] = 77;
    assert_eq!(
        abi::FlowEvent::decode(&bad),
        Err(abi::DecodeError::UnknownType(77))
    );
    bad[0] = abi::EVENT_TRACE;
    bad[1] = 9;
    assert_eq!(
        abi::FlowEvent::decode(&bad).unwrap_err().to_string(),
        "event type 4 has unknown version 9"
    );
}

#[test]
fn l7_records_carry_their_header_and_only_the_captured_bytes() {
    use weir_probes::abi::{DecodeError, L7Event};

    let mut ev = L7Event::zeroed();
    ev.flow.r#type = abi::EVENT_L7;
    ev.flow.version = abi::EVENT_VERSION;
    ev.l7_type = abi::L7_REQUEST;
    ev.number = 7;
    ev.set_data(b"GET /a", b"users", b"\x10json\x1f");
    let bytes = ev.to_bytes();
    assert_eq!(bytes.len(), abi::L7_HEADER_LEN + abi::HTTP_HOST_CAP + 6 + 6);
    let back = L7Event::decode(&bytes).unwrap();
    assert_eq!(
        (back.line(), back.host(), back.hdrs(), back.number),
        (&b"GET /a"[..], &b"users"[..], &b"\x10json\x1f"[..], 7)
    );
    // A response's record is the header alone.
    let mut resp = ev;
    resp.l7_type = abi::L7_RESPONSE;
    resp.status = 204;
    resp.set_data(b"", b"", b"");
    let bytes = resp.to_bytes();
    assert_eq!(bytes.len(), abi::L7_HEADER_LEN);
    let back = L7Event::decode(&bytes).unwrap();
    assert_eq!(
        (back.status, back.line(), back.host()),
        (204, &b""[..], &b""[..])
    );
    // A record shorter than its header, or than its lengths say, is refused.
    let request = ev.to_bytes();
    assert!(matches!(
        L7Event::decode(&request[..request.len() - 1]),
        Err(DecodeError::Truncated { need, .. }) if need == request.len()
    ));
    assert!(matches!(
        L7Event::decode(&request[..abi::L7_HEADER_LEN - 1]),
        Err(DecodeError::Truncated { .. })
    ));
    let mut bad = request.clone();
    bad[std::mem::offset_of!(L7Event, host_len)] = 65;
    bad.resize(abi::L7_HEADER_LEN + abi::L7_DATA_CAP, 0);
    assert!(matches!(
        L7Event::decode(&bad),
        Err(DecodeError::Truncated { .. })
    ));
}
