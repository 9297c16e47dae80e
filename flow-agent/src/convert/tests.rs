use std::sync::Arc;

use weir_probes::abi::{self, FlowEvent};

use super::*;
use crate::flows::{NodeMeta, PeerMeta, PolicyMeta, StoredFlow};
use crate::l7::{HttpRecord, L7Kind};

fn peer(name: &str, identity: u32, ep_id: u32) -> Arc<PeerMeta> {
    Arc::new(PeerMeta {
        ep_id,
        identity,
        cluster: "default".into(),
        namespace: "default".into(),
        pod_name: name.into(),
        labels: vec![
            format!("k8s:app={}", name.trim_end_matches("-0")),
            "k8s:io.kubernetes.pod.namespace=default".into(),
        ],
        workloads: vec![],
    })
}

fn stored(ev: FlowEvent) -> StoredFlow {
    StoredFlow {
        seq: 7,
        time_unix_ns: 1_795_455_001_123_000_000,
        event: ev,
        src: Some(peer("billing-0", 12345, 0)),
        dst: Some(peer("users-0", 23456, 3)),
        interface: Some(Arc::from("lxc03")),
        policies: Some(Arc::from(vec![PolicyMeta {
            kind: "CiliumNetworkPolicy".into(),
            namespace: "default".into(),
            name: "users-ingress".into(),
            labels: vec!["k8s:io.cilium.k8s.policy.name=users-ingress".into()],
            revision: 4,
        }])),
        node: Arc::new(NodeMeta {
            name: "weir-node1".into(),
            labels: Vec::new(),
        }),
        l7: None,
    }
}

fn event(ty: u8) -> FlowEvent {
    let mut ev = FlowEvent {
        r#type: ty,
        version: abi::EVENT_VERSION,
        direction: abi::DIR_INGRESS,
        protocol: 6,
        tcp_flags: 0x02,
        ifindex: 9,
        ep_id: 3,
        src_identity: 12345,
        dst_identity: 23456,
        rule_set: 77,
        count: 1,
        sport: 41234,
        dport: 80,
        ..Default::default()
    };
    ev.saddr[..4].copy_from_slice(&[10, 200, 1, 12]);
    ev.daddr[..4].copy_from_slice(&[10, 200, 1, 11]);
    ev
}

#[test]
fn policy_drop_becomes_a_hubble_drop_flow() {
    let mut ev = event(abi::EVENT_DROP);
    ev.drop_reason = abi::drop_reason::POLICY_DENIED;
    ev.obs_point = abi::obs_point::TO_ENDPOINT;
    let f = Converter { instance: 1 }.to_flow(&stored(ev));
    assert_eq!(f.verdict(), flow::Verdict::Dropped);
    assert_eq!(f.drop_reason_desc(), flow::DropReason::PolicyDenied);
    assert_eq!(
        f.event_type,
        Some(flow::CiliumEventType {
            r#type: 1,
            sub_type: 133
        })
    );
    assert_eq!(f.traffic_direction(), flow::TrafficDirection::Ingress);
    assert_eq!(f.is_reply, Some(BoolValue { value: false }));
    assert_eq!(f.summary, "TCP Flags: SYN");
    assert_eq!(f.ingress_denied_by.len(), 1);
    assert_eq!(f.ingress_denied_by[0].revision, 4);
    assert!(f.ingress_allowed_by.is_empty() && f.egress_denied_by.is_empty());
    let src = f.source.as_ref().unwrap();
    assert_eq!(
        (src.identity, src.namespace.as_str(), src.pod_name.as_str()),
        (12345, "default", "billing-0")
    );
    assert_eq!(f.destination.as_ref().unwrap().id, 3);
    let json = serde_json::to_string(&f).unwrap();
    for piece in [
        r#""verdict":"DROPPED""#,
        r#""drop_reason":133"#,
        r#""IP":{"source":"10.200.1.12","destination":"10.200.1.11","ipVersion":"IPv4"}"#,
        r#""l4":{"TCP":{"source_port":41234,"destination_port":80,"flags":{"SYN":true}}}"#,
        r#""Type":"L3_L4""#,
        r#""node_name":"weir-node1""#,
        r#""event_type":{"type":1,"sub_type":133}"#,
        r#""traffic_direction":"INGRESS""#,
        r#""drop_reason_desc":"POLICY_DENIED""#,
        r#""is_reply":false"#,
        r#""Summary":"TCP Flags: SYN""#,
        r#""time":"2026-11-23T17:30:01.123Z""#,
    ] {
        assert!(json.contains(piece), "{piece} missing in {json}");
    }
}

#[test]
fn reply_trace_is_forwarded_with_its_observation_point() {
    let mut ev = event(abi::EVENT_TRACE);
    ev.flags = abi::EVF_REPLY;
    ev.tcp_flags = 0x12;
    ev.trace_reason = abi::trace_reason::REPLY;
    ev.obs_point = abi::obs_point::TO_STACK;
    ev.direction = abi::DIR_INGRESS;
    let f = Converter { instance: 1 }.to_flow(&stored(ev));
    assert_eq!(f.verdict(), flow::Verdict::Forwarded);
    assert_eq!(f.is_reply, Some(BoolValue { value: true }));
    assert_eq!(
        f.trace_observation_point(),
        flow::TraceObservationPoint::ToStack
    );
    assert_eq!(f.trace_reason(), flow::TraceReason::Reply);
    assert_eq!(f.summary, "TCP Flags: SYN, ACK");
    assert_eq!(f.ingress_allowed_by[0].name, "users-ingress");
    assert_eq!(
        f.interface.as_ref().map(|i| (i.index, i.name.as_str())),
        Some((9, "lxc03"))
    );
    assert_eq!(f.drop_reason, 0);
}

#[test]
fn to_endpoint_trace_uses_the_proto_value_101() {
    let mut ev = event(abi::EVENT_TRACE);
    ev.obs_point = abi::obs_point::TO_ENDPOINT;
    let f = Converter { instance: 1 }.to_flow(&stored(ev));
    assert_eq!(f.trace_observation_point, 101);
    assert_eq!(f.event_type.unwrap().sub_type, 0);
}

#[test]
fn policy_verdicts_map_allow_deny_and_audit() {
    let conv = Converter { instance: 1 };
    let mut ev = event(abi::EVENT_POLICY_VERDICT);
    ev.match_type = 2;
    let f = conv.to_flow(&stored(ev));
    assert_eq!(
        (f.verdict(), f.policy_match_type),
        (flow::Verdict::Forwarded, 2)
    );
    assert_eq!(f.ingress_allowed_by.len(), 1);

    ev.verdict = abi::VERDICT_DENIED;
    ev.drop_reason = abi::drop_reason::POLICY_DENY;
    let f = conv.to_flow(&stored(ev));
    assert_eq!(
        (f.verdict(), f.drop_reason_desc()),
        (flow::Verdict::Dropped, flow::DropReason::PolicyDeny)
    );
    assert_eq!(f.ingress_denied_by.len(), 1);

    ev.flags |= abi::EVF_AUDIT;
    let f = conv.to_flow(&stored(ev));
    assert_eq!(f.verdict(), flow::Verdict::Audit);
    assert_eq!(f.drop_reason, 0);
    assert_eq!(
        f.ingress_denied_by.len(),
        1,
        "audited flows name the policies that would deny"
    );
}

#[test]
fn non_policy_drops_leave_reply_unknown() {
    let mut ev = event(abi::EVENT_DROP);
    ev.drop_reason = abi::drop_reason::INVALID_SOURCE_IP;
    let f = Converter { instance: 1 }.to_flow(&stored(ev));
    assert_eq!(f.is_reply, None);
    assert_eq!(f.drop_reason_desc(), flow::DropReason::InvalidSourceIp);
}

#[test]
fn summaries_follow_hubble() {
    let mut ev = event(abi::EVENT_TRACE);
    ev.protocol = 17;
    assert_eq!(summary(&ev), "UDP");
    ev.protocol = 1;
    ev.icmp_type = 8;
    assert_eq!(summary(&ev), "ICMPv4 EchoRequest");
    ev.icmp_type = 3;
    ev.icmp_code = 3;
    assert_eq!(summary(&ev), "ICMPv4 DestinationUnreachable(Port)");
    ev.icmp_type = 0;
    ev.icmp_code = 5;
    assert_eq!(summary(&ev), "ICMPv4 EchoReply(Code: 5)");
    ev.protocol = 58;
    ev.flags = abi::EVF_IPV6;
    ev.icmp_type = 129;
    ev.icmp_code = 0;
    assert_eq!(summary(&ev), "ICMPv6 EchoReply");
    ev.icmp_type = 200;
    assert_eq!(summary(&ev), "ICMPv6 200(0)");
    ev.protocol = 6;
    ev.tcp_flags = 0x11;
    assert_eq!(summary(&ev), "TCP Flags: ACK, FIN");
}

#[test]
fn uuids_are_unique_per_flow_and_instance() {
    let a = Converter {
        instance: 0x1234_5678_9abc_def0,
    };
    let u = a.uuid(1);
    assert_eq!(u.len(), 36);
    assert_eq!(&u[14..15], "4");
    assert_ne!(u, a.uuid(2));
    assert_ne!(u, Converter { instance: 1 }.uuid(1));
}

fn http(kind: L7Kind, code: u32, latency_ns: u64) -> HttpRecord {
    HttpRecord {
        kind,
        protocol: "HTTP/1.1",
        code,
        latency_ns,
        method: "DELETE".into(),
        url: "http://users/api/v1/users/123".into(),
        headers: Vec::new(),
    }
}

#[test]
fn http_requests_and_responses_become_hubble_l7_flows() {
    let conv = Converter { instance: 1 };
    let mut ev = event(abi::EVENT_L7);
    ev.tcp_flags = 0x18;
    ev.verdict = abi::VERDICT_DENIED;
    ev.drop_reason = abi::drop_reason::POLICY_DENIED;
    let mut req = stored(ev);
    req.l7 = Some(http(L7Kind::Request, 0, 0));
    let f = conv.to_flow(&req);
    assert_eq!(f.r#type(), flow::FlowType::L7);
    assert_eq!(f.verdict(), flow::Verdict::Dropped);
    assert_eq!(f.drop_reason_desc(), flow::DropReason::PolicyDenied);
    assert_eq!(f.is_reply, Some(BoolValue { value: false }));
    assert_eq!(f.summary, "HTTP/1.1 DELETE http://users/api/v1/users/123");
    assert_eq!(
        f.event_type,
        Some(flow::CiliumEventType {
            r#type: 129,
            sub_type: 0
        })
    );
    assert_eq!(f.ingress_denied_by[0].name, "users-ingress");
    let json = serde_json::to_string(&f).unwrap();
    for piece in [
        r#""l7":{"type":"REQUEST","http":{"method":"DELETE","url":"http://users/api/v1/users/123","protocol":"HTTP/1.1"}}"#,
        r#""l4":{"TCP":{"source_port":41234,"destination_port":80}}"#,
        r#""Type":"L7""#,
    ] {
        assert!(json.contains(piece), "{piece} missing in {json}");
    }

    let mut ev = event(abi::EVENT_L7);
    ev.flags = abi::EVF_REPLY;
    let mut resp = stored(ev);
    resp.l7 = Some(http(L7Kind::Response, 403, 2_600_000));
    resp.policies = None;
    let f = conv.to_flow(&resp);
    assert_eq!(f.verdict(), flow::Verdict::Forwarded);
    assert_eq!(f.is_reply, Some(BoolValue { value: true }));
    assert_eq!(
        f.summary,
        "HTTP/1.1 403 2ms (DELETE http://users/api/v1/users/123)"
    );
    let l7 = f.l7.unwrap();
    assert_eq!(
        (l7.r#type(), l7.latency_ns),
        (flow::L7FlowType::Response, 2_600_000)
    );
    assert!(f.ingress_allowed_by.is_empty() && f.ingress_denied_by.is_empty());
}
