//! Realistic flows shared by the golden and end-to-end tests, and the
//! golden-file helper.
#![allow(dead_code)]

use std::path::PathBuf;

use pbjson_types::{BoolValue, Int32Value};
use weir_proto::flow::{
    CiliumEventType, Dns, DropReason, Endpoint, Flow, FlowType, Http, IcmPv4, Ip, IpVersion,
    L7FlowType, Layer4, Layer7, LostEvent, LostEventSource, Policy, Service, Tcp, TcpFlags,
    TrafficDirection, Udp, Verdict, layer4, layer7,
};
use weir_proto::google::protobuf::Timestamp;
use weir_proto::observer::{GetFlowsResponse, get_flows_response::ResponseTypes};
use weir_proto::relay::{NodeState, NodeStatusEvent};

/// 2024-11-23T17:30:01Z.
pub const T0: i64 = 1_732_383_001;

pub fn at(offset_ms: i64) -> Option<Timestamp> {
    let ms = T0 * 1000 + 123 + offset_ms;
    Some(Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    })
}

pub fn pod(ns: &str, name: &str, identity: u32) -> Option<Endpoint> {
    Some(Endpoint {
        id: 100 + identity % 1000,
        identity,
        namespace: ns.into(),
        pod_name: name.into(),
        labels: vec![format!(
            "k8s:app={}",
            name.split('-').next().unwrap_or(name)
        )],
        ..Default::default()
    })
}

pub fn reserved(identity: u32, label: &str) -> Option<Endpoint> {
    Some(Endpoint {
        identity,
        labels: vec![format!("reserved:{label}")],
        ..Default::default()
    })
}

fn ipv4(src: &str, dst: &str) -> Option<Ip> {
    Some(Ip {
        source: src.into(),
        destination: dst.into(),
        ip_version: IpVersion::IPv4 as i32,
        ..Default::default()
    })
}

fn ipv6(src: &str, dst: &str) -> Option<Ip> {
    Some(Ip {
        source: src.into(),
        destination: dst.into(),
        ip_version: IpVersion::IPv6 as i32,
        ..Default::default()
    })
}

fn tcp(sport: u32, dport: u32, flags: TcpFlags) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp {
            source_port: sport,
            destination_port: dport,
            flags: Some(flags),
        })),
    })
}

fn udp(sport: u32, dport: u32) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(layer4::Protocol::Udp(Udp {
            source_port: sport,
            destination_port: dport,
        })),
    })
}

fn syn() -> TcpFlags {
    TcpFlags {
        syn: true,
        ..Default::default()
    }
}

fn event(r#type: i32, sub_type: i32) -> Option<CiliumEventType> {
    Some(CiliumEventType { r#type, sub_type })
}

fn reply(value: bool) -> Option<BoolValue> {
    Some(BoolValue { value })
}

fn policy(name: &str, ns: &str, kind: &str) -> Policy {
    Policy {
        name: name.into(),
        namespace: ns.into(),
        labels: vec![format!("k8s:io.cilium.k8s.policy.name={name}")],
        revision: 7,
        kind: kind.into(),
    }
}

pub fn flow_response(flow: Flow) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: flow.node_name.clone(),
        time: flow.time,
        response_types: Some(ResponseTypes::Flow(flow)),
    }
}

fn base(offset_ms: i64) -> Flow {
    Flow {
        time: at(offset_ms),
        uuid: format!("0b5e6a1c-0000-4000-8000-{offset_ms:012}"),
        node_name: "kind-worker".into(),
        r#type: FlowType::L3L4 as i32,
        ..Default::default()
    }
}

/// The realistic flows, in time order, with a name each.
pub fn flows() -> Vec<(&'static str, Flow)> {
    vec![
        (
            "tcp-syn-policy-verdict-denied",
            Flow {
                verdict: Verdict::Dropped as i32,
                drop_reason_desc: DropReason::PolicyDenied as i32,
                ip: ipv4("10.244.1.12", "10.244.2.31"),
                l4: tcp(41234, 80, syn()),
                source: pod("default", "billing-0", 12345),
                destination: pod("default", "users-0", 23456),
                event_type: event(5, 0),
                traffic_direction: TrafficDirection::Ingress as i32,
                policy_match_type: 0,
                ingress_denied_by: vec![policy("deny-billing", "default", "CiliumNetworkPolicy")],
                summary: "TCP Flags: SYN".into(),
                ..base(0)
            },
        ),
        (
            "tcp-syn-drop",
            Flow {
                verdict: Verdict::Dropped as i32,
                drop_reason: 133,
                drop_reason_desc: DropReason::PolicyDenied as i32,
                ip: ipv4("10.244.1.12", "10.244.2.31"),
                l4: tcp(41234, 80, syn()),
                source: pod("default", "billing-0", 12345),
                destination: pod("default", "users-0", 23456),
                event_type: event(1, 133),
                is_reply: reply(false),
                traffic_direction: TrafficDirection::Ingress as i32,
                summary: "TCP Flags: SYN".into(),
                ..base(0)
            },
        ),
        (
            "policy-verdict-allowed",
            Flow {
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.244.1.20", "10.244.2.31"),
                l4: tcp(51200, 80, syn()),
                source: pod("default", "frontend-7d9f", 34567),
                destination: pod("default", "users-0", 23456),
                event_type: event(5, 0),
                traffic_direction: TrafficDirection::Ingress as i32,
                policy_match_type: 2,
                ingress_allowed_by: vec![
                    policy("allow-frontend", "default", "CiliumNetworkPolicy"),
                    policy("baseline", "", "CiliumClusterwideNetworkPolicy"),
                ],
                summary: "TCP Flags: SYN".into(),
                ..base(5)
            },
        ),
        (
            "reply-to-endpoint",
            Flow {
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.244.2.31", "10.244.1.20"),
                l4: tcp(80, 51200, TcpFlags { syn: true, ack: true, ..Default::default() }),
                source: pod("default", "users-0", 23456),
                destination: pod("default", "frontend-7d9f", 34567),
                event_type: event(4, 0),
                is_reply: reply(true),
                traffic_direction: TrafficDirection::Ingress as i32,
                summary: "TCP Flags: SYN, ACK".into(),
                ..base(6)
            },
        ),
        (
            "unknown-direction-trace",
            Flow {
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.244.1.20", "10.244.2.31"),
                l4: tcp(51200, 80, TcpFlags { ack: true, psh: true, ..Default::default() }),
                source: pod("default", "frontend-7d9f", 34567),
                destination: pod("default", "users-0", 23456),
                event_type: event(4, 5),
                summary: "TCP Flags: ACK, PSH".into(),
                ..base(7)
            },
        ),
        (
            "world-policy-verdict-denied",
            Flow {
                verdict: Verdict::Dropped as i32,
                drop_reason_desc: DropReason::PolicyDeny as i32,
                ip: ipv4("203.0.113.7", "10.244.2.40"),
                l4: tcp(51000, 443, syn()),
                source: reserved(2, "world"),
                destination: pod("shop", "web-0", 45678),
                event_type: event(5, 0),
                traffic_direction: TrafficDirection::Ingress as i32,
                policy_match_type: 1,
                ingress_denied_by: vec![policy("block-world", "shop", "CiliumNetworkPolicy")],
                summary: "TCP Flags: SYN".into(),
                ..base(100)
            },
        ),
        (
            "world-drop-denylist",
            Flow {
                verdict: Verdict::Dropped as i32,
                drop_reason: 181,
                drop_reason_desc: DropReason::PolicyDeny as i32,
                ip: ipv4("203.0.113.7", "10.244.2.40"),
                l4: tcp(51000, 443, syn()),
                source: reserved(2, "world"),
                destination: pod("shop", "web-0", 45678),
                event_type: event(1, 181),
                is_reply: reply(false),
                summary: "TCP Flags: SYN".into(),
                ..base(100)
            },
        ),
        (
            "host-to-dns-udp",
            Flow {
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("172.18.0.2", "10.244.0.5"),
                l4: udp(40512, 53),
                source: reserved(1, "host"),
                destination: pod("kube-system", "coredns-5d78c9869d-x2x7q", 5678),
                destination_service: Some(Service { name: "kube-dns".into(), namespace: "kube-system".into() }),
                event_type: event(4, 0),
                is_reply: reply(false),
                summary: "UDP".into(),
                ..base(200)
            },
        ),
        (
            "ipv6-from-world",
            Flow {
                verdict: Verdict::Forwarded as i32,
                ip: ipv6("2001:db8::1", "fd00:10:244:2::31"),
                l4: tcp(55000, 80, syn()),
                source: reserved(2, "world"),
                destination: pod("default", "users-0", 23456),
                event_type: event(4, 0),
                is_reply: reply(false),
                summary: "TCP Flags: SYN".into(),
                ..base(300)
            },
        ),
        (
            "icmp-echo",
            Flow {
                verdict: Verdict::Forwarded as i32,
                ip: ipv4("10.244.1.12", "10.244.2.31"),
                l4: Some(Layer4 { protocol: Some(layer4::Protocol::IcmPv4(IcmPv4 { r#type: 8, code: 0 })) }),
                source: pod("default", "billing-0", 12345),
                destination: pod("default", "users-0", 23456),
                event_type: event(4, 5),
                is_reply: reply(false),
                summary: "ICMPv4 EchoRequest".into(),
                ..base(400)
            },
        ),
        (
            "policy-verdict-audited",
            Flow {
                verdict: Verdict::Audit as i32,
                ip: ipv4("10.244.1.12", "10.244.3.9"),
                l4: tcp(41300, 5432, syn()),
                source: pod("default", "billing-0", 12345),
                destination: pod("db", "postgres-0", 56789),
                event_type: event(5, 0),
                traffic_direction: TrafficDirection::Egress as i32,
                policy_match_type: 0,
                egress_denied_by: vec![policy("lock-down-egress", "default", "CiliumNetworkPolicy")],
                summary: "TCP Flags: SYN".into(),
                ..base(500)
            },
        ),
        (
            "http-request",
            Flow {
                verdict: Verdict::Forwarded as i32,
                r#type: FlowType::L7 as i32,
                ip: ipv4("10.244.1.20", "10.244.2.31"),
                l4: tcp(51200, 80, TcpFlags::default()),
                source: pod("default", "frontend-7d9f", 34567),
                destination: pod("default", "users-0", 23456),
                event_type: event(129, 0),
                is_reply: reply(false),
                traffic_direction: TrafficDirection::Ingress as i32,
                l7: Some(Layer7 {
                    r#type: L7FlowType::Request as i32,
                    latency_ns: 0,
                    record: Some(layer7::Record::Http(Http {
                        code: 0,
                        method: "GET".into(),
                        url: "http://users.default.svc.cluster.local/v1/users?page=2&limit=10".into(),
                        protocol: "HTTP/1.1".into(),
                        headers: vec![],
                    })),
                }),
                summary: "HTTP/1.1 GET http://users.default.svc.cluster.local/v1/users?page=2&limit=10".into(),
                ..base(600)
            },
        ),
        (
            "http-response",
            Flow {
                verdict: Verdict::Forwarded as i32,
                r#type: FlowType::L7 as i32,
                ip: ipv4("10.244.2.31", "10.244.1.20"),
                l4: tcp(80, 51200, TcpFlags::default()),
                source: pod("default", "users-0", 23456),
                destination: pod("default", "frontend-7d9f", 34567),
                event_type: event(129, 0),
                is_reply: reply(true),
                traffic_direction: TrafficDirection::Ingress as i32,
                l7: Some(Layer7 {
                    r#type: L7FlowType::Response as i32,
                    latency_ns: 3_000_000,
                    record: Some(layer7::Record::Http(Http {
                        code: 200,
                        method: "GET".into(),
                        url: "http://users.default.svc.cluster.local/v1/users?page=2&limit=10".into(),
                        protocol: "HTTP/1.1".into(),
                        headers: vec![],
                    })),
                }),
                summary: "HTTP/1.1 200 3ms (GET http://users.default.svc.cluster.local/v1/users?page=2&limit=10)".into(),
                ..base(603)
            },
        ),
        (
            "http-request-denied",
            Flow {
                verdict: Verdict::Dropped as i32,
                r#type: FlowType::L7 as i32,
                ip: ipv4("10.244.1.20", "10.244.2.31"),
                l4: tcp(51202, 80, TcpFlags::default()),
                source: pod("default", "frontend-7d9f", 34567),
                destination: pod("default", "users-0", 23456),
                event_type: event(129, 0),
                is_reply: reply(false),
                traffic_direction: TrafficDirection::Ingress as i32,
                l7: Some(Layer7 {
                    r#type: L7FlowType::Request as i32,
                    latency_ns: 0,
                    record: Some(layer7::Record::Http(Http {
                        code: 0,
                        method: "DELETE".into(),
                        url: "http://users.default.svc.cluster.local/v1/users/42".into(),
                        protocol: "HTTP/1.1".into(),
                        headers: vec![],
                    })),
                }),
                summary: "HTTP/1.1 DELETE http://users.default.svc.cluster.local/v1/users/42".into(),
                ..base(650)
            },
        ),
        (
            "dns-request",
            Flow {
                verdict: Verdict::Forwarded as i32,
                r#type: FlowType::L7 as i32,
                ip: ipv4("10.244.1.20", "10.244.0.5"),
                l4: udp(39001, 53),
                source: pod("default", "frontend-7d9f", 34567),
                destination: pod("kube-system", "coredns-5d78c9869d-x2x7q", 5678),
                event_type: event(129, 0),
                is_reply: reply(false),
                traffic_direction: TrafficDirection::Egress as i32,
                l7: Some(Layer7 {
                    r#type: L7FlowType::Request as i32,
                    latency_ns: 0,
                    record: Some(layer7::Record::Dns(Dns {
                        query: "users.default.svc.cluster.local.".into(),
                        qtypes: vec!["A".into()],
                        observation_source: "proxy".into(),
                        ..Default::default()
                    })),
                }),
                summary: "DNS Query users.default.svc.cluster.local. A".into(),
                ..base(700)
            },
        ),
    ]
}

/// Every fixture as a response, plus a lost-events notice and a relay
/// node-status error in the middle of the stream.
pub fn responses() -> Vec<GetFlowsResponse> {
    let mut out: Vec<GetFlowsResponse> =
        flows().into_iter().map(|(_, f)| flow_response(f)).collect();
    let lost = GetFlowsResponse {
        response_types: Some(ResponseTypes::LostEvents(LostEvent {
            source: LostEventSource::HubbleRingBuffer as i32,
            num_events_lost: 3,
            cpu: Some(Int32Value { value: 1 }),
            first: None,
            last: None,
        })),
        node_name: "kind-worker".into(),
        time: at(250),
    };
    let node_error = GetFlowsResponse {
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: NodeState::NodeError as i32,
            node_names: vec!["kind-worker2".into()],
            message: "connection refused".into(),
        })),
        node_name: "relay".into(),
        time: at(260),
    };
    out.insert(8, lost);
    out.insert(9, node_error);
    out
}

/// Directory of the golden files.
pub fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("golden")
}

/// Compares `actual` with `tests/<dir>/<name>`; with `WEIR_UPDATE_SNAPSHOTS=1`
/// writes it instead. Returns a message on mismatch.
pub fn check_snapshot(dir: &str, name: &str, actual: &str) -> Result<(), String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir)
        .join(name);
    if std::env::var_os("WEIR_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (run with WEIR_UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let first_diff = expected
        .lines()
        .zip(actual.lines())
        .position(|(a, b)| a != b)
        .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
    Err(format!(
        "{} differs from the output (first difference at line {}):\n--- expected\n{}\n--- actual\n{}\n\
         If the change is intended, run the tests with WEIR_UPDATE_SNAPSHOTS=1 and commit the files.",
        path.display(),
        first_diff + 1,
        expected.lines().nth(first_diff).unwrap_or("<end of file>"),
        actual.lines().nth(first_diff).unwrap_or("<end of output>"),
    ))
}
