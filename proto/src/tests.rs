//! JSON and wire compatibility with Hubble.
//!
//! The expected JSON texts are what Hubble prints for the same messages
//! (`hubble observe -o jsonpb`): protojson with the declared field names, in
//! declaration order, enums by name, 64-bit integers as strings, zero values
//! left out, timestamps in UTC with a `Z`.

use prost::Message;

use crate::flow::{self, Flow};
use crate::google::protobuf::{BoolValue, Timestamp, UInt32Value};
use crate::{observer, relay};

/// A TCP SYN from xwing to deathstar dropped at the destination by an
/// explicit deny rule.
fn syn_drop() -> Flow {
    Flow {
        time: Some(Timestamp {
            seconds: 1_714_829_027,
            nanos: 852_491_871,
        }),
        uuid: "5f1c7a4e-0d6b-4c8e-9a2f-3b7d1e6c9a10".into(),
        verdict: flow::Verdict::Dropped.into(),
        drop_reason: 181,
        ethernet: Some(flow::Ethernet {
            source: "0a:58:0a:f4:00:05".into(),
            destination: "0a:58:0a:f4:00:07".into(),
        }),
        ip: Some(flow::Ip {
            source: "10.244.0.5".into(),
            destination: "10.244.0.7".into(),
            ip_version: flow::IpVersion::IPv4.into(),
            ..Default::default()
        }),
        l4: Some(flow::Layer4 {
            protocol: Some(flow::layer4::Protocol::Tcp(flow::Tcp {
                source_port: 42818,
                destination_port: 80,
                flags: Some(flow::TcpFlags {
                    syn: true,
                    ..Default::default()
                }),
            })),
        }),
        source: Some(flow::Endpoint {
            id: 1021,
            identity: 31028,
            cluster_name: "default".into(),
            namespace: "default".into(),
            labels: vec![
                "k8s:app.kubernetes.io/name=xwing".into(),
                "k8s:class=xwing".into(),
                "k8s:io.kubernetes.pod.namespace=default".into(),
                "k8s:org=alliance".into(),
            ],
            pod_name: "xwing".into(),
            workloads: vec![flow::Workload {
                name: "xwing".into(),
                kind: "Pod".into(),
            }],
        }),
        destination: Some(flow::Endpoint {
            id: 2263,
            identity: 16530,
            cluster_name: "default".into(),
            namespace: "default".into(),
            labels: vec![
                "k8s:class=deathstar".into(),
                "k8s:io.kubernetes.pod.namespace=default".into(),
                "k8s:org=empire".into(),
            ],
            pod_name: "deathstar-c74d84667-cx5kp".into(),
            workloads: vec![flow::Workload {
                name: "deathstar".into(),
                kind: "Deployment".into(),
            }],
        }),
        r#type: flow::FlowType::L3L4.into(),
        node_name: "kind-worker".into(),
        node_labels: vec!["kubernetes.io/hostname=kind-worker".into()],
        event_type: Some(flow::CiliumEventType {
            r#type: 1,
            sub_type: 181,
        }),
        destination_service: Some(flow::Service {
            name: "deathstar".into(),
            namespace: "default".into(),
        }),
        traffic_direction: flow::TrafficDirection::Ingress.into(),
        drop_reason_desc: flow::DropReason::PolicyDeny.into(),
        is_reply: Some(BoolValue { value: false }),
        interface: Some(flow::NetworkInterface {
            index: 14,
            name: "lxc2f0c4a1b7e3d".into(),
        }),
        summary: "TCP Flags: SYN".into(),
        ingress_denied_by: vec![flow::Policy {
            name: "deny-xwing".into(),
            namespace: "default".into(),
            labels: vec![
                "k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy".into(),
                "k8s:io.cilium.k8s.policy.name=deny-xwing".into(),
                "k8s:io.cilium.k8s.policy.namespace=default".into(),
            ],
            revision: 7,
            kind: "CiliumNetworkPolicy".into(),
        }],
        ..Default::default()
    }
}

const SYN_DROP_JSON: &str = concat!(
    r#"{"time":"2024-05-04T13:23:47.852491871Z","#,
    r#""uuid":"5f1c7a4e-0d6b-4c8e-9a2f-3b7d1e6c9a10","#,
    r#""verdict":"DROPPED","drop_reason":181,"#,
    r#""ethernet":{"source":"0a:58:0a:f4:00:05","destination":"0a:58:0a:f4:00:07"},"#,
    r#""IP":{"source":"10.244.0.5","destination":"10.244.0.7","ipVersion":"IPv4"},"#,
    r#""l4":{"TCP":{"source_port":42818,"destination_port":80,"flags":{"SYN":true}}},"#,
    r#""source":{"ID":1021,"identity":31028,"cluster_name":"default","namespace":"default","#,
    r#""labels":["k8s:app.kubernetes.io/name=xwing","k8s:class=xwing","#,
    r#""k8s:io.kubernetes.pod.namespace=default","k8s:org=alliance"],"#,
    r#""pod_name":"xwing","workloads":[{"name":"xwing","kind":"Pod"}]},"#,
    r#""destination":{"ID":2263,"identity":16530,"cluster_name":"default","namespace":"default","#,
    r#""labels":["k8s:class=deathstar","k8s:io.kubernetes.pod.namespace=default","k8s:org=empire"],"#,
    r#""pod_name":"deathstar-c74d84667-cx5kp","workloads":[{"name":"deathstar","kind":"Deployment"}]},"#,
    r#""Type":"L3_L4","node_name":"kind-worker","#,
    r#""node_labels":["kubernetes.io/hostname=kind-worker"],"#,
    r#""event_type":{"type":1,"sub_type":181},"#,
    r#""destination_service":{"name":"deathstar","namespace":"default"},"#,
    r#""traffic_direction":"INGRESS","drop_reason_desc":"POLICY_DENY","is_reply":false,"#,
    r#""interface":{"index":14,"name":"lxc2f0c4a1b7e3d"},"#,
    r#""Summary":"TCP Flags: SYN","#,
    r#""ingress_denied_by":[{"name":"deny-xwing","namespace":"default","#,
    r#""labels":["k8s:io.cilium.k8s.policy.derived-from=CiliumNetworkPolicy","#,
    r#""k8s:io.cilium.k8s.policy.name=deny-xwing","k8s:io.cilium.k8s.policy.namespace=default"],"#,
    r#""revision":"7","kind":"CiliumNetworkPolicy"}]}"#,
);

#[test]
fn flow_json_is_hubbles_protojson() {
    let json = serde_json::to_string(&syn_drop()).unwrap();
    assert_eq!(json, SYN_DROP_JSON);
}

#[test]
fn flow_json_round_trips() {
    let parsed: Flow = serde_json::from_str(SYN_DROP_JSON).unwrap();
    assert_eq!(parsed, syn_drop());
}

#[test]
fn json_accepts_lower_camel_case_names_and_enum_numbers() {
    // protojson parsers accept both spellings and enum numbers.
    let parsed: Flow = serde_json::from_str(
        r#"{"verdict":2,"dropReasonDesc":"POLICY_DENIED","isReply":true,"nodeName":"n1"}"#,
    )
    .unwrap();
    assert_eq!(parsed.verdict(), flow::Verdict::Dropped);
    assert_eq!(parsed.drop_reason_desc(), flow::DropReason::PolicyDenied);
    assert_eq!(parsed.is_reply, Some(BoolValue { value: true }));
    assert_eq!(parsed.node_name, "n1");
}

#[test]
fn json_ignores_unknown_fields() {
    let parsed: Flow =
        serde_json::from_str(r#"{"node_name":"n1","some_future_field":{"x":1}}"#).unwrap();
    assert_eq!(parsed.node_name, "n1");
}

#[test]
fn get_flows_response_json() {
    let response = observer::GetFlowsResponse {
        response_types: Some(observer::get_flows_response::ResponseTypes::Flow(Flow {
            verdict: flow::Verdict::Forwarded.into(),
            r#type: flow::FlowType::L3L4.into(),
            node_name: "kind-worker".into(),
            is_reply: Some(BoolValue { value: true }),
            reply: true,
            socket_cookie: 18_446_744_073_709_551_615,
            summary: "TCP Flags: ACK".into(),
            ..Default::default()
        })),
        node_name: "kind-worker".into(),
        time: Some(Timestamp {
            seconds: 1_714_829_027,
            nanos: 852_000_000,
        }),
    };
    let json = serde_json::to_string(&response).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"flow":{"verdict":"FORWARDED","Type":"L3_L4","node_name":"kind-worker","#,
            r#""reply":true,"is_reply":true,"socket_cookie":"18446744073709551615","#,
            r#""Summary":"TCP Flags: ACK"},"#,
            r#""node_name":"kind-worker","time":"2024-05-04T13:23:47.852Z"}"#,
        )
    );
    let back: observer::GetFlowsResponse = serde_json::from_str(&json).unwrap();
    assert_eq!(back, response);
}

#[test]
fn node_status_and_lost_events_json() {
    let status = observer::GetFlowsResponse {
        response_types: Some(observer::get_flows_response::ResponseTypes::NodeStatus(
            relay::NodeStatusEvent {
                state_change: relay::NodeState::NodeConnected.into(),
                node_names: vec!["kind-control-plane".into(), "kind-worker".into()],
                message: String::new(),
            },
        )),
        node_name: "relay".into(),
        time: Some(Timestamp {
            seconds: 1_714_829_027,
            nanos: 0,
        }),
    };
    assert_eq!(
        serde_json::to_string(&status).unwrap(),
        concat!(
            r#"{"node_status":{"state_change":"NODE_CONNECTED","#,
            r#""node_names":["kind-control-plane","kind-worker"]},"#,
            r#""node_name":"relay","time":"2024-05-04T13:23:47Z"}"#,
        )
    );
    let lost = flow::LostEvent {
        source: flow::LostEventSource::PerfEventRingBuffer.into(),
        num_events_lost: 42,
        cpu: Some(crate::google::protobuf::Int32Value { value: 0 }),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&lost).unwrap(),
        r#"{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"42","cpu":0}"#
    );
}

#[test]
fn server_status_json_with_weir_extension() {
    let status = observer::ServerStatusResponse {
        num_flows: 4095,
        max_flows: 4096,
        seen_flows: 81_234,
        uptime_ns: 3_600_000_000_000,
        num_connected_nodes: Some(UInt32Value { value: 3 }),
        version: "weir 0.1.0".into(),
        flows_rate: 11.74,
        num_lost_events: 12,
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&status).unwrap(),
        concat!(
            r#"{"num_flows":"4095","max_flows":"4096","seen_flows":"81234","#,
            r#""uptime_ns":"3600000000000","num_connected_nodes":3,"#,
            r#""version":"weir 0.1.0","flows_rate":11.74,"num_lost_events":"12"}"#,
        )
    );
}

/// Encodes `msg` and returns the protobuf key (field number, wire type) of
/// every top-level field, in order.
fn top_level_keys(bytes: &[u8]) -> Vec<(u32, u8)> {
    let mut buf = bytes;
    let mut keys = Vec::new();
    while !buf.is_empty() {
        let key = prost::encoding::decode_varint(&mut buf).unwrap();
        let (field, wire_type) = ((key >> 3) as u32, (key & 7) as u8);
        keys.push((field, wire_type));
        match wire_type {
            0 => {
                prost::encoding::decode_varint(&mut buf).unwrap();
            }
            1 => buf = &buf[8..],
            2 => {
                let len = prost::encoding::decode_varint(&mut buf).unwrap() as usize;
                buf = &buf[len..];
            }
            5 => buf = &buf[4..],
            other => panic!("unexpected wire type {other}"),
        }
    }
    keys
}

/// The varint encoding of a field key.
fn key_bytes(field: u32, wire_type: u8) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint((u64::from(field) << 3) | u64::from(wire_type), &mut out);
    out
}

#[test]
fn wire_field_numbers_match_hubble() {
    let flow = Flow {
        summary: "TCP Flags: SYN".into(),
        trace_observation_point: flow::TraceObservationPoint::ToEndpoint.into(),
        egress_denied_by: vec![flow::Policy {
            name: "p".into(),
            ..Default::default()
        }],
        ip: Some(flow::Ip {
            source: "10.0.0.1".into(),
            ..Default::default()
        }),
        r#type: flow::FlowType::L7.into(),
        is_reply: Some(BoolValue { value: false }),
        extensions: Some(crate::google::protobuf::Any::default()),
        ..Default::default()
    };
    let bytes = flow.encode_to_vec();
    let keys = top_level_keys(&bytes);
    // prost writes fields in field-number order.
    assert_eq!(
        keys,
        vec![
            (5, 2),
            (10, 0),
            (24, 0),
            (26, 2),
            (21004, 2),
            (100000, 2),
            (150000, 2)
        ]
    );
    // Summary = 100000, length-delimited: key bytes 0x82 0xEA 0x30.
    assert_eq!(key_bytes(100_000, 2), [0x82, 0xEA, 0x30]);
    let summary_at = bytes
        .windows(3)
        .position(|w| w == [0x82, 0xEA, 0x30])
        .unwrap();
    assert_eq!(bytes[summary_at + 3] as usize, "TCP Flags: SYN".len());
    assert_eq!(
        &bytes[summary_at + 4..summary_at + 4 + 14],
        b"TCP Flags: SYN"
    );
    // trace_observation_point = 24 (varint key 0xC0 0x01) carries TO_ENDPOINT = 101.
    assert_eq!(key_bytes(24, 0), [0xC0, 0x01]);
    assert!(bytes.windows(3).any(|w| w == [0xC0, 0x01, 101]));
    // egress_denied_by = 21004, length-delimited: key 0xE2 0xA0 0x0A.
    assert_eq!(key_bytes(21_004, 2), [0xE2, 0xA0, 0x0A]);
    assert!(bytes.windows(3).any(|w| w == [0xE2, 0xA0, 0x0A]));

    let decoded = Flow::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, flow);
}

#[test]
fn enum_values_match_hubble() {
    use flow::{DropReason, TraceObservationPoint as T, Verdict};
    assert_eq!(T::ToEndpoint as i32, 101);
    assert_eq!(T::ToCrypto as i32, 13);
    assert_eq!(T::ToEndpoint.as_str_name(), "TO_ENDPOINT");
    assert_eq!(Verdict::Audit as i32, 4);
    assert_eq!(Verdict::Translated as i32, 7);
    assert_eq!(DropReason::PolicyDenied as i32, 133);
    assert_eq!(DropReason::PolicyDeny as i32, 181);
    assert_eq!(DropReason::AuthRequired as i32, 189);
    assert_eq!(DropReason::DropPuntProxy as i32, 205);
    assert_eq!(
        DropReason::from_str_name("POLICY_DENY"),
        Some(DropReason::PolicyDeny)
    );
    assert_eq!(flow::DebugEventType::DbgLb6LoopbackSnatRev as i32, 68);
    assert_eq!(flow::DebugCapturePoint::DbgCaptureSnatPost as i32, 11);
    #[allow(deprecated)] // still a valid number on the wire
    let service_deleted = flow::AgentEventType::ServiceDeleted as i32;
    assert_eq!(service_deleted, 12);
    assert_eq!(
        flow::SocketTranslationPoint::SockXlatePointPostDirectionRev as i32,
        4
    );
    assert_eq!(flow::LostEventSource::HubbleRingBuffer as i32, 3);
    assert_eq!(relay::NodeState::NodeError as i32, 4);
    assert_eq!(crate::peer::ChangeNotificationType::PeerUpdated as i32, 3);
}

#[test]
fn other_odd_field_numbers() {
    let response = observer::GetFlowsResponse {
        response_types: None,
        node_name: "n".into(),
        time: Some(Timestamp {
            seconds: 1,
            nanos: 0,
        }),
    };
    assert_eq!(
        top_level_keys(&response.encode_to_vec()),
        vec![(1000, 2), (1001, 2)]
    );

    let request = observer::GetFlowsRequest {
        number: 20,
        follow: true,
        whitelist: vec![flow::FlowFilter {
            experimental: Some(flow::flow_filter::Experimental {
                cel_expression: vec![],
            }),
            ..Default::default()
        }],
        field_mask: Some(crate::google::protobuf::FieldMask {
            paths: vec!["time".into()],
        }),
        experimental: Some(observer::get_flows_request::Experimental {}),
        extensions: Some(Default::default()),
        ..Default::default()
    };
    assert_eq!(
        top_level_keys(&request.encode_to_vec()),
        vec![(1, 0), (3, 0), (6, 2), (10, 2), (999, 2), (150000, 2)]
    );
    let filter = flow::FlowFilter {
        experimental: Some(flow::flow_filter::Experimental {
            cel_expression: vec!["x".into()],
        }),
        encrypted: vec![true],
        ip_trace_id: vec![7],
        ..Default::default()
    };
    assert_eq!(
        top_level_keys(&filter.encode_to_vec()),
        vec![(39, 2), (40, 2), (999, 2)]
    );

    let status = observer::ServerStatusResponse {
        num_lost_events: 5,
        ..Default::default()
    };
    assert_eq!(top_level_keys(&status.encode_to_vec()), vec![(1000, 0)]);
}

#[test]
fn descriptor_set_keeps_reserved_numbers() {
    let fds = prost_types_free_decode(crate::FILE_DESCRIPTOR_SET).expect("descriptor set decodes");
    let flow = fds
        .iter()
        .find(|(name, _)| name == "flow.Flow")
        .map(|(_, r)| r.clone())
        .unwrap();
    for n in [7, 12, 17, 18] {
        assert!(flow.contains(&n), "flow.Flow reserves {n}");
    }
    let req = fds
        .iter()
        .find(|(name, _)| name == "observer.GetFlowsRequest")
        .unwrap();
    assert!(req.1.contains(&2));
}

/// Minimal descriptor decoding: (full message name, reserved range starts)
/// for every top-level message, using only prost's derive.
fn prost_types_free_decode(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>, prost::DecodeError> {
    #[derive(Clone, PartialEq, Message)]
    struct Set {
        #[prost(message, repeated, tag = "1")]
        file: Vec<File>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct File {
        #[prost(string, optional, tag = "2")]
        package: Option<String>,
        #[prost(message, repeated, tag = "4")]
        message_type: Vec<Msg>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Msg {
        #[prost(string, optional, tag = "1")]
        name: Option<String>,
        #[prost(message, repeated, tag = "9")]
        reserved_range: Vec<Range>,
    }
    #[derive(Clone, PartialEq, Message)]
    struct Range {
        #[prost(int32, optional, tag = "1")]
        start: Option<i32>,
    }
    let set = Set::decode(bytes)?;
    Ok(set
        .file
        .iter()
        .flat_map(|f| {
            let pkg = f.package.clone().unwrap_or_default();
            f.message_type.iter().map(move |m| {
                (
                    format!("{pkg}.{}", m.name.clone().unwrap_or_default()),
                    m.reserved_range.iter().filter_map(|r| r.start).collect(),
                )
            })
        })
        .collect())
}

#[test]
fn export_event_json_puts_the_event_first() {
    let event = observer::ExportEvent {
        response_types: Some(observer::export_event::ResponseTypes::AgentEvent(
            flow::AgentEvent {
                r#type: flow::AgentEventType::PolicyUpdated.into(),
                notification: Some(flow::agent_event::Notification::PolicyUpdate(
                    flow::PolicyUpdateNotification {
                        labels: vec!["k8s:io.cilium.k8s.policy.name=deny-xwing".into()],
                        revision: 7,
                        rule_count: 1,
                    },
                )),
            },
        )),
        node_name: "kind-worker".into(),
        time: Some(Timestamp {
            seconds: 1_714_829_027,
            nanos: 1_000,
        }),
    };
    let json = serde_json::to_string(&event).unwrap();
    assert_eq!(
        json,
        concat!(
            r#"{"agent_event":{"type":"POLICY_UPDATED","policy_update":{"#,
            r#""labels":["k8s:io.cilium.k8s.policy.name=deny-xwing"],"revision":"7","rule_count":"1"}},"#,
            r#""node_name":"kind-worker","time":"2024-05-04T13:23:47.000001Z"}"#,
        )
    );
    assert_eq!(
        serde_json::from_str::<observer::ExportEvent>(&json).unwrap(),
        event
    );
}

#[test]
fn get_flows_response_json_parsing() {
    let parsed: observer::GetFlowsResponse = serde_json::from_str(
        r#"{"lostEvents":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"3"},"nodeName":null,"extra":1}"#,
    )
    .unwrap();
    assert_eq!(parsed.node_name, "");
    match parsed.response_types {
        Some(observer::get_flows_response::ResponseTypes::LostEvents(lost)) => {
            assert_eq!(lost.source(), flow::LostEventSource::HubbleRingBuffer);
            assert_eq!(lost.num_events_lost, 3);
        }
        other => panic!("expected lost_events, got {other:?}"),
    }
    let two = r#"{"flow":{},"lost_events":{}}"#;
    assert!(serde_json::from_str::<observer::GetFlowsResponse>(two).is_err());
    let wrong = r#"{"agent_event":{}}"#;
    assert!(serde_json::from_str::<observer::GetFlowsResponse>(wrong).is_err());
    assert_eq!(
        serde_json::to_string(&observer::GetFlowsResponse::default()).unwrap(),
        "{}"
    );
}

#[test]
fn l7_records_json() {
    let dns = Flow {
        r#type: flow::FlowType::L7.into(),
        l7: Some(flow::Layer7 {
            r#type: flow::L7FlowType::Response.into(),
            latency_ns: 1_234_567,
            record: Some(flow::layer7::Record::Dns(flow::Dns {
                query: "cilium.io.".into(),
                ips: vec!["104.198.14.52".into()],
                ttl: 300,
                rcode: 0,
                qtypes: vec!["A".into()],
                rrtypes: vec!["A".into()],
                ..Default::default()
            })),
        }),
        ..Default::default()
    };
    assert_eq!(
        serde_json::to_string(&dns).unwrap(),
        concat!(
            r#"{"Type":"L7","l7":{"type":"RESPONSE","latency_ns":"1234567","#,
            r#""dns":{"query":"cilium.io.","ips":["104.198.14.52"],"ttl":300,"#,
            r#""qtypes":["A"],"rrtypes":["A"]}}}"#,
        )
    );
}
