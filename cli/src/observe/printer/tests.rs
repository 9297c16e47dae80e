use weir_proto::flow::{CiliumEventType, Endpoint, Ip, Layer4, Tcp, layer4};

use super::*;

fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

/// Hubble's own printer test flow: a TCP SYN from identity 4 (health) to
/// 12345 dropped by policy.
fn hubble_flow(is_reply: Option<bool>) -> GetFlowsResponse {
    let flow = Flow {
        time: ts(1234, 567_800_000),
        r#type: 1,
        node_name: "k8s1".into(),
        verdict: 2,
        ip: Some(Ip {
            source: "1.1.1.1".into(),
            destination: "2.2.2.2".into(),
            ..Default::default()
        }),
        source: Some(Endpoint {
            identity: 4,
            ..Default::default()
        }),
        destination: Some(Endpoint {
            identity: 12345,
            ..Default::default()
        }),
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Tcp(Tcp {
                source_port: 31793,
                destination_port: 8080,
                flags: None,
            })),
        }),
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        summary: "TCP Flags: SYN".into(),
        is_reply: is_reply.map(|value| pbjson_types::BoolValue { value }),
        ..Default::default()
    };
    GetFlowsResponse {
        response_types: Some(ResponseTypes::Flow(flow)),
        ..Default::default()
    }
}

fn render(opts: PrinterOptions, responses: &[GetFlowsResponse]) -> (String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    {
        let mut p = Printer::new(opts, &mut out, &mut err);
        for r in responses {
            p.write_response(r).unwrap();
        }
        p.finish().unwrap();
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

fn opts(output: Output) -> PrinterOptions {
    PrinterOptions {
        output,
        ..Default::default()
    }
}

#[test]
fn matches_hubbles_printer_examples() {
    let compact = render(opts(Output::Compact), &[hubble_flow(Some(false))]).0;
    assert_eq!(
        compact,
        "Jan  1 00:20:34.567: 1.1.1.1:31793 (health) -> 2.2.2.2:8080 (ID:12345) Policy denied DROPPED (TCP Flags: SYN)\n"
    );
    let reply = render(
        PrinterOptions {
            node_name: true,
            ..opts(Output::Compact)
        },
        &[hubble_flow(Some(true))],
    )
    .0;
    assert_eq!(
        reply,
        "Jan  1 00:20:34.567 [k8s1]: 2.2.2.2:8080 (ID:12345) <- 1.1.1.1:31793 (health) Policy denied DROPPED (TCP Flags: SYN)\n"
    );
    let unknown = render(opts(Output::Compact), &[hubble_flow(None)]).0;
    assert!(unknown.contains("(health) <> 2.2.2.2"));
    let table = render(
        PrinterOptions {
            node_name: true,
            ..opts(Output::Table)
        },
        &[hubble_flow(Some(false))],
    )
    .0;
    assert_eq!(
        table,
        "TIMESTAMP             NODE   SOURCE          DESTINATION    TYPE            VERDICT   SUMMARY\n\
         Jan  1 00:20:34.567   k8s1   1.1.1.1:31793   2.2.2.2:8080   Policy denied   DROPPED   TCP Flags: SYN\n"
    );
    let dict = render(
        opts(Output::Dict),
        &[hubble_flow(Some(false)), hubble_flow(Some(false))],
    )
    .0;
    let block = "  TIMESTAMP: Jan  1 00:20:34.567\n     SOURCE: 1.1.1.1:31793\nDESTINATION: 2.2.2.2:8080\n       TYPE: Policy denied\n    VERDICT: DROPPED\n    SUMMARY: TCP Flags: SYN\n";
    assert_eq!(dict, format!("{block}------------\n{block}"));
    let json = render(opts(Output::JsonPb), &[hubble_flow(Some(false))]).0;
    assert_eq!(
        json,
        "{\"flow\":{\"time\":\"1970-01-01T00:20:34.567800Z\",\"verdict\":\"DROPPED\",\
         \"IP\":{\"source\":\"1.1.1.1\",\"destination\":\"2.2.2.2\"},\
         \"l4\":{\"TCP\":{\"source_port\":31793,\"destination_port\":8080}},\
         \"source\":{\"identity\":4},\"destination\":{\"identity\":12345},\
         \"Type\":\"L3_L4\",\"node_name\":\"k8s1\",\"event_type\":{\"type\":1,\"sub_type\":133},\
         \"is_reply\":false,\"Summary\":\"TCP Flags: SYN\"}}\n"
    );
}

#[test]
fn node_status_goes_to_stderr_and_informational_ones_only_with_debug() {
    let status = |state: NodeState, names: &[&str], message: &str| GetFlowsResponse {
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: state as i32,
            node_names: names.iter().map(|s| (*s).to_owned()).collect(),
            message: message.into(),
        })),
        node_name: "relay".into(),
        time: ts(0, 0),
    };
    let events = [
        status(NodeState::NodeConnected, &["a", "b"], ""),
        status(NodeState::NodeUnavailable, &["c"], ""),
        status(NodeState::NodeError, &["d", "e"], "connection refused"),
        status(NodeState::NodeGone, &["f"], ""),
    ];
    let (out, err) = render(opts(Output::Compact), &events);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "Jan  1 00:00:00.000 [relay]: 1 nodes are unavailable: c\n\
         Jan  1 00:00:00.000 [relay]: Error \"connection refused\" on 2 nodes: d, e\n"
    );
    let (_, err) = render(
        PrinterOptions {
            debug: true,
            ..opts(Output::Compact)
        },
        &events,
    );
    assert!(err.starts_with("Jan  1 00:00:00.000 [relay]: Receiving flows from 2 nodes: a, b\n"));
    assert!(err.ends_with("Jan  1 00:00:00.000 [relay]: 1 nodes removed from cluster: f\n"));
    let (_, err) = render(opts(Output::Dict), &events[2..3]);
    assert_eq!(
        err,
        "  TIMESTAMP: Jan  1 00:00:00.000\n      STATE: NODE_ERROR\n      NODES: d, e\n    MESSAGE: \"connection refused\"\n"
    );
    let (out, err) = render(opts(Output::JsonPb), &events[1..2]);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "{\"node_status\":{\"state_change\":\"NODE_UNAVAILABLE\",\"node_names\":[\"c\"]},\"node_name\":\"relay\",\"time\":\"1970-01-01T00:00:00Z\"}\n"
    );
}

#[test]
fn cuts_long_node_lists() {
    let names: Vec<String> = (0..20).map(|i| format!("node-{i:02}")).collect();
    assert_eq!(
        join_with_cutoff(&names, ", ", NODE_NAMES_CUTOFF),
        "node-00, node-01, node-02, node-03, node-04 (and 15 more)"
    );
    assert_eq!(join_with_cutoff(&names[..1], ", ", 1), "node-00");
    assert_eq!(join_with_cutoff(&[], ", ", 1), "");
}

#[test]
fn terminal_escapes_in_flow_data_are_neutralized() {
    let mut res = hubble_flow(Some(false));
    if let Some(ResponseTypes::Flow(f)) = &mut res.response_types {
        f.summary = "evil\x1b[2J\r".into();
    }
    let out = render(
        PrinterOptions {
            paint: Painter { enabled: true },
            ..opts(Output::Compact)
        },
        &[res],
    )
    .0;
    assert!(out.contains("(evil^[[2J\\r)"), "{out:?}");
    assert!(out.contains("\x1b[31mDROPPED\x1b[0m"));
}
