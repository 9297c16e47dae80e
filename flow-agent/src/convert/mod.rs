//! Stored flow → Hubble `flow.Flow`, with the semantics of Hubble's L3/L4 and L7 parsers: verdict
//! from the event type, `is_reply` only where it is known, Summary text as Hubble writes it, and
//! the deciding policies in the `*_allowed_by` / `*_denied_by` field of the flow's direction.

use std::sync::Arc;

use weir_probes::abi::{self, FlowEvent};
use weir_proto::flow::{self, layer4::Protocol};
use weir_proto::google::protobuf::{BoolValue, Timestamp};

use crate::flows::{PeerMeta, PolicyMeta, StoredFlow};
use crate::l7::{HttpRecord, L7Kind};

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;

/// Builds `flow.Flow` messages; `instance` makes flow UUIDs unique across agent runs.
#[derive(Debug, Clone, Copy)]
pub struct Converter {
    pub instance: u64,
}

impl Converter {
    pub fn new() -> Converter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Converter {
            instance: nanos ^ (u64::from(std::process::id()) << 32),
        }
    }

    /// A v4-style UUID from the agent instance and the flow's sequence number.
    pub fn uuid(&self, seq: u64) -> String {
        let hi = self.instance;
        let lo = seq;
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xffff,
            hi & 0xfff,
            0x8000 | ((lo >> 48) & 0x3fff),
            lo & 0xffff_ffff_ffff
        )
    }

    pub fn to_flow(&self, f: &StoredFlow) -> flow::Flow {
        let ev = &f.event;
        let verdict = verdict(ev);
        let dir = match ev.direction {
            abi::DIR_INGRESS => flow::TrafficDirection::Ingress,
            abi::DIR_EGRESS => flow::TrafficDirection::Egress,
            _ => flow::TrafficDirection::Unknown,
        };
        let drop_reason = u32::from(ev.drop_reason);
        let mut out = flow::Flow {
            time: Some(Timestamp {
                seconds: f.time_unix_ns.div_euclid(1_000_000_000),
                nanos: f.time_unix_ns.rem_euclid(1_000_000_000) as i32,
            }),
            uuid: self.uuid(f.seq),
            emitter: Some(flow::Emitter {
                name: "weir".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            }),
            verdict: verdict as i32,
            drop_reason: if verdict == flow::Verdict::Dropped {
                drop_reason
            } else {
                0
            },
            drop_reason_desc: if verdict == flow::Verdict::Dropped {
                drop_reason as i32
            } else {
                0
            },
            ip: Some(flow::Ip {
                source: f.source_ip().to_string(),
                destination: f.destination_ip().to_string(),
                ip_version: if ev.flags & abi::EVF_IPV6 != 0 {
                    flow::IpVersion::IPv6 as i32
                } else {
                    flow::IpVersion::IPv4 as i32
                },
                ..Default::default()
            }),
            l4: layer4(ev),
            source: Some(endpoint(f.src.as_deref(), ev.src_identity)),
            destination: Some(endpoint(f.dst.as_deref(), ev.dst_identity)),
            r#type: flow::FlowType::L3L4 as i32,
            node_name: f.node.name.clone(),
            node_labels: f.node.labels.clone(),
            event_type: Some(flow::CiliumEventType {
                r#type: i32::from(ev.r#type),
                sub_type: match ev.r#type {
                    abi::EVENT_DROP => i32::from(ev.drop_reason as u8),
                    abi::EVENT_TRACE => i32::from(ev.obs_point),
                    _ => 0,
                },
            }),
            traffic_direction: dir as i32,
            summary: summary(ev),
            ..Default::default()
        };
        let is_reply = match ev.r#type {
            abi::EVENT_TRACE => Some(ev.flags & abi::EVF_REPLY != 0),
            abi::EVENT_POLICY_VERDICT => Some(false),
            // Policy drops happen only on a connection's first packet; other drops are unknown.
            abi::EVENT_DROP
                if matches!(
                    ev.drop_reason,
                    abi::drop_reason::POLICY_DENIED | abi::drop_reason::POLICY_DENY
                ) =>
            {
                Some(false)
            }
            _ => None,
        };
        let is_reply = match (&f.l7, is_reply) {
            (Some(_), _) => Some(ev.flags & abi::EVF_REPLY != 0),
            (None, r) => r,
        };
        out.is_reply = is_reply.map(|value| BoolValue { value });
        out.reply = is_reply.unwrap_or(false);
        if ev.r#type == abi::EVENT_TRACE {
            out.trace_observation_point = match ev.obs_point {
                abi::obs_point::TO_ENDPOINT => flow::TraceObservationPoint::ToEndpoint,
                abi::obs_point::TO_PROXY => flow::TraceObservationPoint::ToProxy,
                abi::obs_point::TO_STACK => flow::TraceObservationPoint::ToStack,
                abi::obs_point::FROM_ENDPOINT => flow::TraceObservationPoint::FromEndpoint,
                _ => flow::TraceObservationPoint::UnknownPoint,
            } as i32;
            out.trace_reason = i32::from(ev.trace_reason);
        }
        if ev.r#type == abi::EVENT_POLICY_VERDICT {
            out.policy_match_type = u32::from(ev.match_type);
        }
        if let Some(http) = &f.l7 {
            layer7(&mut out, http);
        }
        if let Some(name) = &f.interface {
            out.interface = Some(flow::NetworkInterface {
                index: ev.ifindex,
                name: name.to_string(),
            });
        }
        if let Some(policies) = &f.policies {
            let list: Vec<flow::Policy> = policies.iter().map(policy).collect();
            let denied = matches!(verdict, flow::Verdict::Dropped | flow::Verdict::Audit);
            match (dir, denied) {
                (flow::TrafficDirection::Ingress, false) => out.ingress_allowed_by = list,
                (flow::TrafficDirection::Ingress, true) => out.ingress_denied_by = list,
                (flow::TrafficDirection::Egress, false) => out.egress_allowed_by = list,
                (flow::TrafficDirection::Egress, true) => out.egress_denied_by = list,
                _ => {}
            }
        }
        out
    }
}

impl Default for Converter {
    fn default() -> Self {
        Converter::new()
    }
}

/// Makes `out` an L7 flow: Layer7 record, type, Summary as Hubble's L7 parser writes it, and
/// the L4 ports without TCP flags (the record stands for a message, not a segment).
fn layer7(out: &mut flow::Flow, http: &HttpRecord) {
    let (kind, summary) = match http.kind {
        L7Kind::Request => (
            flow::L7FlowType::Request,
            format!("{} {} {}", http.protocol, http.method, http.url),
        ),
        L7Kind::Response => {
            let mut summary = format!(
                "{} {} {}ms ({} {})",
                http.protocol,
                http.code,
                http.latency_ns / 1_000_000,
                http.method,
                http.url
            );
            // A gRPC call's outcome is its grpc-status, not the HTTP status.
            if let Some((_, status)) = http.headers.iter().find(|(k, _)| k == "grpc-status") {
                summary.push_str(" grpc-status ");
                summary.push_str(status);
            }
            (flow::L7FlowType::Response, summary)
        }
    };
    out.r#type = flow::FlowType::L7 as i32;
    out.summary = summary;
    out.l7 = Some(flow::Layer7 {
        r#type: kind as i32,
        latency_ns: http.latency_ns,
        record: Some(flow::layer7::Record::Http(flow::Http {
            code: http.code,
            method: http.method.to_string(),
            url: http.url.to_string(),
            protocol: http.protocol.to_string(),
            headers: http
                .headers
                .iter()
                .map(|(key, value)| flow::HttpHeader {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        })),
    });
    if let Some(flow::Layer4 {
        protocol: Some(Protocol::Tcp(tcp)),
    }) = &mut out.l4
    {
        tcp.flags = None;
    }
}

fn verdict(ev: &FlowEvent) -> flow::Verdict {
    match ev.r#type {
        abi::EVENT_L7 if ev.verdict == abi::VERDICT_DENIED => flow::Verdict::Dropped,
        abi::EVENT_L7 => flow::Verdict::Forwarded,
        abi::EVENT_DROP => flow::Verdict::Dropped,
        abi::EVENT_TRACE => flow::Verdict::Forwarded,
        abi::EVENT_POLICY_VERDICT if ev.flags & abi::EVF_AUDIT != 0 => flow::Verdict::Audit,
        abi::EVENT_POLICY_VERDICT if ev.verdict == abi::VERDICT_DENIED => flow::Verdict::Dropped,
        abi::EVENT_POLICY_VERDICT => flow::Verdict::Forwarded,
        _ => flow::Verdict::Unknown,
    }
}

fn endpoint(meta: Option<&PeerMeta>, identity: u32) -> flow::Endpoint {
    let Some(m) = meta else {
        return flow::Endpoint {
            identity,
            ..Default::default()
        };
    };
    flow::Endpoint {
        id: m.ep_id,
        identity: if identity != 0 { identity } else { m.identity },
        cluster_name: m.cluster.clone(),
        namespace: m.namespace.clone(),
        labels: m.labels.clone(),
        pod_name: m.pod_name.clone(),
        workloads: m
            .workloads
            .iter()
            .map(|(name, kind)| flow::Workload {
                name: name.clone(),
                kind: kind.clone(),
            })
            .collect(),
    }
}

fn policy(p: &PolicyMeta) -> flow::Policy {
    flow::Policy {
        name: p.name.clone(),
        namespace: p.namespace.clone(),
        labels: p.labels.clone(),
        revision: p.revision,
        kind: p.kind.clone(),
    }
}

fn tcp_flags(bits: u8) -> flow::TcpFlags {
    flow::TcpFlags {
        fin: bits & 0x01 != 0,
        syn: bits & 0x02 != 0,
        rst: bits & 0x04 != 0,
        psh: bits & 0x08 != 0,
        ack: bits & 0x10 != 0,
        urg: bits & 0x20 != 0,
        ece: bits & 0x40 != 0,
        cwr: bits & 0x80 != 0,
        ns: false,
    }
}

fn layer4(ev: &FlowEvent) -> Option<flow::Layer4> {
    let (sport, dport) = (u32::from(ev.sport), u32::from(ev.dport));
    let protocol = match ev.protocol {
        IPPROTO_TCP => Protocol::Tcp(flow::Tcp {
            source_port: sport,
            destination_port: dport,
            flags: Some(tcp_flags(ev.tcp_flags)),
        }),
        IPPROTO_UDP => Protocol::Udp(flow::Udp {
            source_port: sport,
            destination_port: dport,
        }),
        IPPROTO_SCTP => Protocol::Sctp(flow::Sctp {
            source_port: sport,
            destination_port: dport,
        }),
        IPPROTO_ICMP => Protocol::IcmPv4(flow::IcmPv4 {
            r#type: u32::from(ev.icmp_type),
            code: u32::from(ev.icmp_code),
        }),
        IPPROTO_ICMPV6 => Protocol::IcmPv6(flow::IcmPv6 {
            r#type: u32::from(ev.icmp_type),
            code: u32::from(ev.icmp_code),
        }),
        _ => return None,
    };
    Some(flow::Layer4 {
        protocol: Some(protocol),
    })
}

/// Hubble's Summary: "TCP Flags: SYN, ACK", "UDP", "ICMPv4 EchoRequest", or the innermost layer.
pub fn summary(ev: &FlowEvent) -> String {
    match ev.protocol {
        IPPROTO_TCP => {
            const NAMES: [(u8, &str); 8] = [
                (0x02, "SYN"),
                (0x10, "ACK"),
                (0x04, "RST"),
                (0x01, "FIN"),
                (0x08, "PSH"),
                (0x20, "URG"),
                (0x40, "ECE"),
                (0x80, "CWR"),
            ];
            let flags: Vec<&str> = NAMES
                .iter()
                .filter(|(bit, _)| ev.tcp_flags & bit != 0)
                .map(|(_, n)| *n)
                .collect();
            format!("TCP Flags: {}", flags.join(", "))
        }
        IPPROTO_UDP => "UDP".into(),
        IPPROTO_SCTP => "SCTP".into(),
        IPPROTO_ICMP => format!("ICMPv4 {}", icmpv4_name(ev.icmp_type, ev.icmp_code)),
        IPPROTO_ICMPV6 => format!("ICMPv6 {}", icmpv6_name(ev.icmp_type, ev.icmp_code)),
        _ if ev.flags & abi::EVF_IPV6 != 0 => "IPv6".into(),
        _ => "IPv4".into(),
    }
}

/// Type and code names as gopacket prints them (Hubble's Summary uses them).
fn type_code(type_name: Option<&str>, codes: &[&str], t: u8, c: u8) -> String {
    match type_name {
        None => format!("{t}({c})"),
        Some(name) if codes.is_empty() && c == 0 => name.to_string(),
        Some(name) => match codes.get(usize::from(c)).filter(|s| !s.is_empty()) {
            Some(code) => format!("{name}({code})"),
            None => format!("{name}(Code: {c})"),
        },
    }
}

fn icmpv4_name(t: u8, c: u8) -> String {
    let (name, codes): (Option<&str>, &[&str]) = match t {
        0 => (Some("EchoReply"), &[]),
        3 => (
            Some("DestinationUnreachable"),
            &[
                "Net",
                "Host",
                "Protocol",
                "Port",
                "FragmentationNeeded",
                "SourceRoutingFailed",
                "NetUnknown",
                "HostUnknown",
                "SourceIsolated",
                "NetAdminProhibited",
                "HostAdminProhibited",
                "NetTOS",
                "HostTOS",
                "CommAdminProhibited",
                "HostPrecedence",
                "PrecedenceCutoff",
            ],
        ),
        4 => (Some("SourceQuench"), &[]),
        5 => (
            Some("Redirect"),
            &["Network", "Host", "TOS+Network", "TOS+Host"],
        ),
        8 => (Some("EchoRequest"), &[]),
        9 => (Some("RouterAdvertisement"), &[]),
        10 => (Some("RouterSolicitation"), &[]),
        11 => (
            Some("TimeExceeded"),
            &["TTLExceeded", "FragmentReassemblyTimeExceeded"],
        ),
        12 => (
            Some("ParameterProblem"),
            &["PointerIndicatesError", "MissingOption", "BadLength"],
        ),
        13 => (Some("TimestampRequest"), &[]),
        14 => (Some("TimestampReply"), &[]),
        15 => (Some("InfoRequest"), &[]),
        16 => (Some("InfoReply"), &[]),
        17 => (Some("AddressMaskRequest"), &[]),
        18 => (Some("AddressMaskReply"), &[]),
        _ => (None, &[]),
    };
    type_code(name, codes, t, c)
}

fn icmpv6_name(t: u8, c: u8) -> String {
    let (name, codes): (Option<&str>, &[&str]) = match t {
        1 => (
            Some("DestinationUnreachable"),
            &[
                "NoRouteToDst",
                "AdminProhibited",
                "BeyondScopeOfSrc",
                "AddressUnreachable",
                "PortUnreachable",
                "SrcAddressFailedPolicy",
                "RejectRouteToDst",
            ],
        ),
        2 => (Some("PacketTooBig"), &[]),
        3 => (
            Some("TimeExceeded"),
            &["HopLimitExceeded", "FragmentReassemblyTimeExceeded"],
        ),
        4 => (
            Some("ParameterProblem"),
            &[
                "ErroneousHeaderField",
                "UnrecognizedNextHeader",
                "UnrecognizedIPv6Option",
            ],
        ),
        128 => (Some("EchoRequest"), &[]),
        129 => (Some("EchoReply"), &[]),
        133 => (Some("RouterSolicitation"), &[]),
        134 => (Some("RouterAdvertisement"), &[]),
        135 => (Some("NeighborSolicitation"), &[]),
        136 => (Some("NeighborAdvertisement"), &[]),
        137 => (Some("Redirect"), &[]),
        _ => (None, &[]),
    };
    type_code(name, codes, t, c)
}

/// The flow's namespaces (source and destination) for GetNamespaces.
pub fn namespaces(f: &StoredFlow) -> impl Iterator<Item = (&str, &str)> {
    [f.src.as_ref(), f.dst.as_ref()]
        .into_iter()
        .flatten()
        .map(Arc::as_ref)
        .filter(|m| !m.namespace.is_empty())
        .map(|m| (m.cluster.as_str(), m.namespace.as_str()))
}

#[cfg(test)]
mod tests;
