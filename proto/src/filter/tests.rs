//! One test per filter field family, then list semantics and errors.

use super::*;
use crate::flow::{
    CiliumEventType, Endpoint, EventTypeFilter, FlowFilter, HttpHeader, Ip, Layer4, Layer7,
    NetworkInterface, Service, Tcp, TcpFlags, Workload,
};
use crate::google::protobuf::BoolValue;

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Compiles `whitelist` alone; panics with the error text on failure.
fn wl(whitelist: Vec<FlowFilter>) -> FlowFilters {
    FlowFilters::new(&whitelist, &[]).unwrap_or_else(|e| panic!("filters should compile: {e}"))
}

/// Shorthand: does a single whitelist filter select `flow`?
fn sel(filter: FlowFilter, flow: &Flow) -> bool {
    wl(vec![filter]).matches(flow)
}

/// Compiles a single whitelist filter and returns the error text.
fn err(filter: FlowFilter) -> String {
    match FlowFilters::new(&[filter], &[]) {
        Ok(_) => panic!("filter should be rejected"),
        Err(e) => e.to_string(),
    }
}

fn endpoint(ns: &str, pod: &str, identity: u32, labels: &[&str]) -> Endpoint {
    Endpoint {
        identity,
        namespace: ns.into(),
        pod_name: pod.into(),
        labels: strings(labels),
        ..Default::default()
    }
}

fn tcp(src: u32, dst: u32, flags: TcpFlags) -> Option<Layer4> {
    Some(Layer4 {
        protocol: Some(layer4::Protocol::Tcp(Tcp {
            source_port: src,
            destination_port: dst,
            flags: Some(flags),
        })),
    })
}

fn syn() -> TcpFlags {
    TcpFlags {
        syn: true,
        ..Default::default()
    }
}

/// A dropped TCP SYN from default/xwing to default/deathstar.
fn base_flow() -> Flow {
    Flow {
        uuid: "u-1".into(),
        verdict: flow::Verdict::Dropped.into(),
        drop_reason_desc: flow::DropReason::PolicyDenied.into(),
        ip: Some(Ip {
            source: "10.244.0.5".into(),
            destination: "10.244.1.7".into(),
            ip_version: flow::IpVersion::IPv4.into(),
            ..Default::default()
        }),
        l4: tcp(42818, 80, syn()),
        source: Some(endpoint(
            "default",
            "xwing",
            31028,
            &["k8s:app=xwing", "k8s:org=alliance"],
        )),
        destination: Some(endpoint(
            "default",
            "deathstar-c74d84667-cx5kp",
            16530,
            &["k8s:app=deathstar", "k8s:org=empire"],
        )),
        node_name: "kind-worker".into(),
        event_type: Some(CiliumEventType {
            r#type: 1,
            sub_type: 133,
        }),
        traffic_direction: flow::TrafficDirection::Ingress.into(),
        is_reply: Some(BoolValue { value: false }),
        ..Default::default()
    }
}

fn http_flow(code: u32, method: &str, url: &str, headers: &[(&str, &str)]) -> Flow {
    Flow {
        verdict: flow::Verdict::Forwarded.into(),
        r#type: flow::FlowType::L7.into(),
        event_type: Some(CiliumEventType {
            r#type: 129,
            sub_type: 0,
        }),
        l7: Some(Layer7 {
            r#type: flow::L7FlowType::Response.into(),
            latency_ns: 0,
            record: Some(layer7::Record::Http(flow::Http {
                code,
                method: method.into(),
                url: url.into(),
                protocol: "HTTP/1.1".into(),
                headers: headers
                    .iter()
                    .map(|(k, v)| HttpHeader {
                        key: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
            })),
        }),
        ..base_flow()
    }
}

fn dns_flow(query: &str) -> Flow {
    Flow {
        l7: Some(Layer7 {
            r#type: flow::L7FlowType::Request.into(),
            latency_ns: 0,
            record: Some(layer7::Record::Dns(flow::Dns {
                query: query.into(),
                ..Default::default()
            })),
        }),
        ..base_flow()
    }
}

#[test]
fn empty_lists_and_empty_filter_select_everything() {
    let f = base_flow();
    assert!(FlowFilters::default().matches(&f));
    assert!(FlowFilters::new(&[], &[]).unwrap().is_empty());
    assert!(sel(FlowFilter::default(), &f));
    assert!(sel(FlowFilter::default(), &Flow::default()));
}

#[test]
fn whitelist_or_blacklist_nor() {
    let f = base_flow();
    let from_xwing = FlowFilter {
        source_pod: strings(&["default/xwing"]),
        ..Default::default()
    };
    let to_nowhere = FlowFilter {
        destination_pod: strings(&["other/"]),
        ..Default::default()
    };
    let dropped = FlowFilter {
        verdict: vec![flow::Verdict::Dropped.into()],
        ..Default::default()
    };
    let forwarded = FlowFilter {
        verdict: vec![flow::Verdict::Forwarded.into()],
        ..Default::default()
    };

    // Whitelist: any filter may match.
    assert!(wl(vec![to_nowhere.clone(), from_xwing.clone()]).matches(&f));
    assert!(!wl(vec![to_nowhere.clone()]).matches(&f));
    // Blacklist: no filter may match.
    let only_black = FlowFilters::new(&[], std::slice::from_ref(&forwarded)).unwrap();
    assert!(only_black.matches(&f));
    let only_black = FlowFilters::new(&[], &[forwarded.clone(), dropped.clone()]).unwrap();
    assert!(!only_black.matches(&f));
    // Whitelist minus blacklist.
    let both = FlowFilters::new(
        std::slice::from_ref(&from_xwing),
        std::slice::from_ref(&dropped),
    )
    .unwrap();
    assert!(!both.matches(&f));
    let both = FlowFilters::new(&[from_xwing], &[forwarded]).unwrap();
    assert!(both.matches(&f));
    assert!(!both.is_empty());
}

#[test]
fn fields_are_anded_values_are_ored() {
    let f = base_flow();
    let filter = |pods: &[&str], ports: &[&str]| FlowFilter {
        source_pod: strings(pods),
        destination_port: strings(ports),
        ..Default::default()
    };
    assert!(sel(filter(&["default/xwing"], &["80"]), &f));
    assert!(sel(
        filter(&["kube-system/", "default/x"], &["443", "80"]),
        &f
    ));
    assert!(!sel(filter(&["default/xwing"], &["443"]), &f));
    assert!(!sel(filter(&["kube-system/"], &["80"]), &f));
}

#[test]
fn uuid() {
    let f = base_flow();
    assert!(sel(
        FlowFilter {
            uuid: strings(&["x", "u-1"]),
            ..Default::default()
        },
        &f
    ));
    assert!(!sel(
        FlowFilter {
            uuid: strings(&["u-2"]),
            ..Default::default()
        },
        &f
    ));
}

#[test]
fn ips_exact_and_cidr() {
    let f = base_flow();
    let src = |v: &[&str]| FlowFilter {
        source_ip: strings(v),
        ..Default::default()
    };
    let dst = |v: &[&str]| FlowFilter {
        destination_ip: strings(v),
        ..Default::default()
    };
    assert!(sel(src(&["10.244.0.5"]), &f));
    assert!(sel(src(&["192.168.0.1", "10.244.0.0/24"]), &f));
    assert!(!sel(src(&["10.244.1.0/24"]), &f));
    assert!(sel(dst(&["10.244.1.0/24"]), &f));
    assert!(!sel(dst(&["10.244.0.5"]), &f));
    assert!(!sel(src(&["10.0.0.0/8"]), &Flow::default()));

    let v6 = Flow {
        ip: Some(Ip {
            source: "fd00::1:5".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert!(sel(src(&["fd00::/16"]), &v6));
    assert!(
        sel(src(&["FD00:0::1:5"]), &v6),
        "addresses compare by value"
    );
    assert!(!sel(src(&["10.0.0.0/8"]), &v6));
}

#[test]
fn ip_xlated() {
    let mut f = base_flow();
    let filter = FlowFilter {
        source_ip_xlated: strings(&["172.18.0.0/16"]),
        ..Default::default()
    };
    assert!(!sel(filter.clone(), &f));
    f.ip.as_mut().unwrap().source_xlated = "172.18.0.3".into();
    assert!(sel(filter, &f));
}

#[test]
fn pods_and_namespaces() {
    let f = base_flow();
    let src = |v: &[&str]| FlowFilter {
        source_pod: strings(v),
        ..Default::default()
    };
    let dst = |v: &[&str]| FlowFilter {
        destination_pod: strings(v),
        ..Default::default()
    };
    assert!(sel(src(&["default/"]), &f), "namespace only");
    assert!(sel(src(&["default/xw"]), &f), "namespace and name prefix");
    assert!(sel(src(&["xwing"]), &f), "no namespace means default");
    assert!(sel(src(&["/xwi"]), &f), "empty namespace means any");
    assert!(!sel(src(&["kube-system/xwing"]), &f));
    assert!(!sel(src(&["default/tie"]), &f));
    assert!(sel(dst(&["default/deathstar-"]), &f));
    assert!(!sel(dst(&["default/xwing"]), &f));

    let in_kube_system = Flow {
        source: Some(endpoint(
            "kube-system",
            "coredns-5d78c9869d-abcde",
            102,
            &[],
        )),
        ..Default::default()
    };
    assert!(sel(src(&["/coredns-"]), &in_kube_system));
    assert!(
        !sel(src(&["coredns-"]), &in_kube_system),
        "bare name is in default"
    );
    // A flow without pod information never matches.
    assert!(!sel(src(&["/x"]), &Flow::default()));
    assert!(!sel(src(&["default/"]), &Flow::default()));
}

#[test]
fn services() {
    let f = Flow {
        destination_service: Some(Service {
            name: "deathstar".into(),
            namespace: "empire".into(),
        }),
        ..base_flow()
    };
    let dst = |v: &[&str]| FlowFilter {
        destination_service: strings(v),
        ..Default::default()
    };
    let src = |v: &[&str]| FlowFilter {
        source_service: strings(v),
        ..Default::default()
    };
    assert!(sel(dst(&["empire/death"]), &f));
    assert!(sel(dst(&["empire/"]), &f));
    assert!(sel(dst(&["/deathstar"]), &f));
    assert!(!sel(dst(&["deathstar"]), &f), "bare name is in default");
    assert!(!sel(src(&["empire/"]), &f));
}

#[test]
fn fqdn_patterns() {
    let f = Flow {
        source_names: strings(&["api.example.com"]),
        destination_names: strings(&["www.cilium.io", "cilium.io"]),
        ..base_flow()
    };
    let dst = |v: &[&str]| FlowFilter {
        destination_fqdn: strings(v),
        ..Default::default()
    };
    let src = |v: &[&str]| FlowFilter {
        source_fqdn: strings(v),
        ..Default::default()
    };
    assert!(sel(dst(&["cilium.io"]), &f));
    assert!(sel(dst(&["*.cilium.io"]), &f));
    assert!(
        sel(dst(&["WWW.Cilium.IO."]), &f),
        "case and one trailing dot are ignored"
    );
    assert!(!sel(dst(&["*.example.com"]), &f));
    assert!(sel(src(&["*.example.com"]), &f));
    assert!(!sel(src(&["*"]), &base_flow()), "no names, no match");
}

#[test]
fn labels_selectors() {
    let f = base_flow();
    let src = |v: &[&str]| FlowFilter {
        source_label: strings(v),
        ..Default::default()
    };
    let dst = |v: &[&str]| FlowFilter {
        destination_label: strings(v),
        ..Default::default()
    };
    assert!(sel(src(&["app=xwing"]), &f));
    assert!(sel(src(&["k8s:app=xwing"]), &f));
    assert!(!sel(src(&["container:app=xwing"]), &f));
    assert!(sel(src(&["app in (xwing, tiefighter)"]), &f));
    assert!(sel(src(&["org=alliance,app"]), &f));
    assert!(!sel(src(&["org=alliance,!app"]), &f));
    assert!(sel(src(&["!canary"]), &f));
    assert!(
        sel(src(&["org=empire", "app=xwing"]), &f),
        "selectors are ORed"
    );
    assert!(sel(dst(&["k8s:org notin (alliance)"]), &f));
    assert!(!sel(dst(&["app=xwing"]), &f));
}

#[test]
fn node_labels() {
    let f = Flow {
        node_labels: strings(&["kubernetes.io/hostname=kind-worker", "zone=a"]),
        ..base_flow()
    };
    let nl = |v: &[&str]| FlowFilter {
        node_labels: strings(v),
        ..Default::default()
    };
    assert!(sel(nl(&["zone=a"]), &f));
    assert!(sel(
        nl(&["kubernetes.io/hostname in (kind-worker, kind-worker2)"]),
        &f
    ));
    assert!(!sel(nl(&["zone=b"]), &f));
}

#[test]
fn workloads() {
    let mut f = base_flow();
    f.source.as_mut().unwrap().workloads = vec![Workload {
        name: "xwing".into(),
        kind: "Deployment".into(),
    }];
    let src = |name: &str, kind: &str| FlowFilter {
        source_workload: vec![Workload {
            name: name.into(),
            kind: kind.into(),
        }],
        ..Default::default()
    };
    assert!(sel(src("xwing", ""), &f));
    assert!(sel(src("", "Deployment"), &f));
    assert!(sel(src("xwing", "Deployment"), &f));
    assert!(!sel(src("xwing", "DaemonSet"), &f));
    let dst = FlowFilter {
        destination_workload: vec![Workload {
            name: "xwing".into(),
            kind: String::new(),
        }],
        ..Default::default()
    };
    assert!(!sel(dst, &f));
}

#[test]
fn cluster_names() {
    let mut f = base_flow();
    f.source.as_mut().unwrap().cluster_name = "east".into();
    let src = |v: &[&str]| FlowFilter {
        source_cluster_name: strings(v),
        ..Default::default()
    };
    let dst = |v: &[&str]| FlowFilter {
        destination_cluster_name: strings(v),
        ..Default::default()
    };
    assert!(sel(src(&["west", "east"]), &f));
    assert!(!sel(dst(&["east"]), &f));
}

#[test]
fn verdict_direction_drop_reason() {
    let f = base_flow();
    let verdict = |v: flow::Verdict| FlowFilter {
        verdict: vec![v.into()],
        ..Default::default()
    };
    assert!(sel(verdict(flow::Verdict::Dropped), &f));
    assert!(!sel(verdict(flow::Verdict::Audit), &f));

    let dir = |d: flow::TrafficDirection| FlowFilter {
        traffic_direction: vec![d.into()],
        ..Default::default()
    };
    assert!(sel(dir(flow::TrafficDirection::Ingress), &f));
    assert!(!sel(dir(flow::TrafficDirection::Egress), &f));

    let reason = |r: flow::DropReason| FlowFilter {
        drop_reason_desc: vec![r.into()],
        ..Default::default()
    };
    assert!(sel(reason(flow::DropReason::PolicyDenied), &f));
    assert!(!sel(reason(flow::DropReason::PolicyDeny), &f));
    // Only dropped flows have a drop reason.
    let forwarded = Flow {
        verdict: flow::Verdict::Forwarded.into(),
        ..base_flow()
    };
    assert!(!sel(reason(flow::DropReason::PolicyDenied), &forwarded));
}

#[test]
fn interfaces() {
    let f = Flow {
        interface: Some(NetworkInterface {
            index: 7,
            name: "lxc12ab".into(),
        }),
        ..base_flow()
    };
    let iface = |index: u32, name: &str| FlowFilter {
        interface: vec![NetworkInterface {
            index,
            name: name.into(),
        }],
        ..Default::default()
    };
    assert!(sel(iface(7, ""), &f));
    assert!(sel(iface(0, "lxc12ab"), &f));
    assert!(sel(iface(7, "lxc12ab"), &f));
    assert!(!sel(iface(8, "lxc12ab"), &f));
    assert!(
        !sel(iface(0, ""), &base_flow()),
        "flows without an interface never match"
    );
}

#[test]
fn event_types_and_sub_types() {
    let f = base_flow(); // drop (1), sub-type 133
    let et = |t: i32, match_sub: bool, sub: i32| FlowFilter {
        event_type: vec![EventTypeFilter {
            r#type: t,
            match_sub_type: match_sub,
            sub_type: sub,
        }],
        ..Default::default()
    };
    assert!(sel(et(1, false, 0), &f));
    assert!(sel(et(1, true, 133), &f));
    assert!(!sel(et(1, true, 181), &f));
    assert!(!sel(et(4, false, 0), &f));
    assert!(sel(et(0, false, 0), &f), "type 0 matches any type");
    assert!(sel(et(0, true, 133), &f));
    let trace_to_endpoint = Flow {
        event_type: Some(CiliumEventType {
            r#type: 4,
            sub_type: 0,
        }),
        ..base_flow()
    };
    assert!(
        sel(et(4, true, 0), &trace_to_endpoint),
        "sub-type 0 is matchable"
    );
    assert!(!sel(
        et(4, true, 0),
        &Flow {
            event_type: None,
            ..base_flow()
        }
    ));
}

#[test]
fn http_status_codes() {
    let status = |v: &[&str]| FlowFilter {
        http_status_code: strings(v),
        ..Default::default()
    };
    let not_found = http_flow(404, "GET", "http://svc/x", &[]);
    assert!(sel(status(&["404"]), &not_found));
    assert!(sel(status(&["4+"]), &not_found));
    assert!(sel(status(&["40+"]), &not_found));
    assert!(sel(status(&["5+", "404"]), &not_found));
    assert!(!sel(status(&["41+"]), &not_found));
    assert!(!sel(status(&["2+"]), &not_found));
    // Requests (code 0) and non-HTTP flows never match.
    assert!(!sel(
        status(&["2+"]),
        &http_flow(0, "GET", "http://svc/x", &[])
    ));
    assert!(!sel(status(&["4+"]), &base_flow()));
}

#[test]
fn http_method_path_url_headers() {
    let f = http_flow(
        200,
        "POST",
        "http://deathstar.default.svc.cluster.local/v1/request-landing?x=1",
        &[
            ("x-request-id", "abc"),
            ("content-type", "application/json"),
        ],
    );
    let method = |v: &[&str]| FlowFilter {
        http_method: strings(v),
        ..Default::default()
    };
    assert!(
        sel(method(&["post"]), &f),
        "methods compare case-insensitively"
    );
    assert!(!sel(method(&["GET"]), &f));

    let path = |v: &[&str]| FlowFilter {
        http_path: strings(v),
        ..Default::default()
    };
    assert!(sel(path(&["^/v1/"]), &f));
    assert!(
        sel(path(&["request-landing$"]), &f),
        "the query is not part of the path"
    );
    assert!(
        !sel(path(&["deathstar"]), &f),
        "the host is not part of the path"
    );

    let url = |v: &[&str]| FlowFilter {
        http_url: strings(v),
        ..Default::default()
    };
    assert!(sel(url(&[r"deathstar\.default"]), &f));
    assert!(sel(url(&[r"\?x=1$"]), &f));
    assert!(!sel(url(&["^https://"]), &f));

    let header = |k: &str, v: &str| FlowFilter {
        http_header: vec![HttpHeader {
            key: k.into(),
            value: v.into(),
        }],
        ..Default::default()
    };
    assert!(sel(header("x-request-id", "abc"), &f));
    assert!(!sel(header("x-request-id", "abd"), &f));
    assert!(
        !sel(header("x-request-id", ""), &f),
        "key and value must both be equal"
    );

    // HTTP fields may be combined with an l7 event type filter.
    let with_l7 = FlowFilter {
        http_method: strings(&["POST"]),
        event_type: vec![EventTypeFilter {
            r#type: 129,
            ..Default::default()
        }],
        ..Default::default()
    };
    assert!(sel(with_l7, &f));
    assert!(!sel(method(&["POST"]), &base_flow()));
}

#[test]
fn protocols() {
    let p = |v: &[&str]| FlowFilter {
        protocol: strings(v),
        ..Default::default()
    };
    let f = base_flow();
    assert!(sel(p(&["tcp"]), &f));
    assert!(sel(p(&["TCP"]), &f));
    assert!(!sel(p(&["udp", "icmp"]), &f));
    let icmp6 = Flow {
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::IcmPv6(flow::IcmPv6 {
                r#type: 128,
                code: 0,
            })),
        }),
        ..Default::default()
    };
    assert!(sel(p(&["icmp"]), &icmp6));
    assert!(sel(p(&["icmpv6"]), &icmp6));
    assert!(!sel(p(&["icmpv4"]), &icmp6));
    let udp = Flow {
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(flow::Udp::default())),
        }),
        ..Default::default()
    };
    assert!(sel(p(&["udp"]), &udp));
    let sctp = Flow {
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Sctp(flow::Sctp::default())),
        }),
        ..Default::default()
    };
    assert!(sel(p(&["sctp"]), &sctp));
    assert!(sel(p(&["http"]), &http_flow(200, "GET", "/", &[])));
    assert!(
        sel(p(&["tcp"]), &http_flow(200, "GET", "/", &[])),
        "L7 flows keep their L4"
    );
    assert!(sel(p(&["dns"]), &dns_flow("cilium.io.")));
    assert!(!sel(p(&["kafka"]), &dns_flow("cilium.io.")));
}

#[test]
fn ports() {
    let f = base_flow();
    let src = |v: &[&str]| FlowFilter {
        source_port: strings(v),
        ..Default::default()
    };
    let dst = |v: &[&str]| FlowFilter {
        destination_port: strings(v),
        ..Default::default()
    };
    assert!(sel(dst(&["80"]), &f));
    assert!(sel(dst(&["080"]), &f), "leading zeros are fine");
    assert!(sel(src(&["42818"]), &f));
    assert!(!sel(src(&["80"]), &f));
    let icmp = Flow {
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::IcmPv4(flow::IcmPv4 {
                r#type: 8,
                code: 0,
            })),
        }),
        ..Default::default()
    };
    assert!(!sel(dst(&["0"]), &icmp), "ICMP has no ports");
}

#[test]
fn reply() {
    let r = |v: bool| FlowFilter {
        reply: vec![v],
        ..Default::default()
    };
    let request = Flow {
        verdict: flow::Verdict::Forwarded.into(),
        ..base_flow()
    };
    let reply = Flow {
        is_reply: Some(BoolValue { value: true }),
        ..request.clone()
    };
    let unknown = Flow {
        is_reply: None,
        ..request.clone()
    };
    assert!(sel(r(false), &request));
    assert!(!sel(r(true), &request));
    assert!(sel(r(true), &reply));
    assert!(
        !sel(r(false), &unknown),
        "unknown direction matches neither"
    );
    assert!(!sel(r(true), &unknown));
    // Dropped flows of unknown direction count as requests.
    let dropped_unknown = Flow {
        is_reply: None,
        ..base_flow()
    };
    assert!(sel(r(false), &dropped_unknown));
    assert!(!sel(r(true), &dropped_unknown));
}

#[test]
fn dns_queries() {
    let q = |v: &[&str]| FlowFilter {
        dns_query: strings(v),
        ..Default::default()
    };
    assert!(sel(q(&[r".*\.io\.$"]), &dns_flow("cilium.io.")));
    assert!(sel(q(&["^kube", "cilium"]), &dns_flow("docs.cilium.io.")));
    assert!(!sel(q(&[r"\.com\.$"]), &dns_flow("cilium.io.")));
    assert!(!sel(q(&[".*"]), &base_flow()), "not a DNS flow");
}

#[test]
fn identities() {
    let f = base_flow();
    let src = |v: &[u32]| FlowFilter {
        source_identity: v.to_vec(),
        ..Default::default()
    };
    let dst = |v: &[u32]| FlowFilter {
        destination_identity: v.to_vec(),
        ..Default::default()
    };
    assert!(sel(src(&[2, 31028]), &f));
    assert!(!sel(src(&[16530]), &f));
    assert!(sel(dst(&[16530]), &f));
    assert!(
        !sel(dst(&[0]), &Flow::default()),
        "no endpoint, no identity"
    );
}

#[test]
fn tcp_flags_subset() {
    let flags = |v: Vec<TcpFlags>| FlowFilter {
        tcp_flags: v,
        ..Default::default()
    };
    let syn_ack = Flow {
        l4: tcp(
            80,
            42818,
            TcpFlags {
                syn: true,
                ack: true,
                ..Default::default()
            },
        ),
        ..base_flow()
    };
    let ack = TcpFlags {
        ack: true,
        ..Default::default()
    };
    let fin = TcpFlags {
        fin: true,
        ..Default::default()
    };
    let syn_ack_flags = TcpFlags {
        syn: true,
        ack: true,
        ..Default::default()
    };
    let syn_fin = TcpFlags {
        syn: true,
        fin: true,
        ..Default::default()
    };
    assert!(
        sel(flags(vec![syn()]), &syn_ack),
        "every flag of the value is set"
    );
    assert!(sel(flags(vec![syn_ack_flags]), &syn_ack));
    assert!(!sel(flags(vec![syn_fin]), &syn_ack), "FIN is missing");
    assert!(sel(flags(vec![fin, ack]), &syn_ack), "values are ORed");
    assert!(
        !sel(flags(vec![ack]), &base_flow()),
        "a bare SYN has no ACK"
    );
    let udp = Flow {
        l4: Some(Layer4 {
            protocol: Some(layer4::Protocol::Udp(flow::Udp::default())),
        }),
        ..Default::default()
    };
    assert!(!sel(flags(vec![TcpFlags::default()]), &udp), "not TCP");
}

#[test]
fn node_names() {
    let n = |v: &[&str]| FlowFilter {
        node_name: strings(v),
        ..Default::default()
    };
    let f = base_flow(); // kind-worker, default cluster
    assert!(sel(n(&["kind-worker"]), &f));
    assert!(sel(n(&["kind-*"]), &f));
    assert!(sel(n(&["default/kind-*"]), &f));
    assert!(sel(n(&["default/"]), &f));
    assert!(!sel(n(&["east/"]), &f));
    assert!(!sel(n(&["k8s*"]), &f));
    let east = Flow {
        node_name: "east/k8s1.example.com".into(),
        ..base_flow()
    };
    assert!(sel(n(&["k8s*"]), &east));
    assert!(sel(n(&["east/*.example.com"]), &east));
    assert!(sel(n(&["/k8s1.example.com"]), &east));
    assert!(!sel(n(&["west/*"]), &east));
    assert!(
        !sel(n(&["*"]), &Flow::default()),
        "flows without node name never match"
    );
}

#[test]
fn ip_version_trace_ids_encrypted() {
    let f = base_flow();
    let ver = |v: flow::IpVersion| FlowFilter {
        ip_version: vec![v.into()],
        ..Default::default()
    };
    assert!(sel(ver(flow::IpVersion::IPv4), &f));
    assert!(!sel(ver(flow::IpVersion::IPv6), &f));
    assert!(sel(ver(flow::IpVersion::IpNotUsed), &Flow::default()));

    let traced = Flow {
        trace_context: Some(flow::TraceContext {
            parent: Some(flow::TraceParent {
                trace_id: "4bf92f3577b34da6".into(),
            }),
        }),
        ip_trace_id: Some(flow::IpTraceId {
            trace_id: 99,
            ip_option_type: 136,
        }),
        ..base_flow()
    };
    let tid = |v: &[&str]| FlowFilter {
        trace_id: strings(v),
        ..Default::default()
    };
    assert!(sel(tid(&["4bf92f3577b34da6"]), &traced));
    assert!(!sel(tid(&["4bf92f3577b34da6"]), &f));
    let ipt = |v: &[u64]| FlowFilter {
        ip_trace_id: v.to_vec(),
        ..Default::default()
    };
    assert!(sel(ipt(&[1, 99]), &traced));
    assert!(!sel(ipt(&[98]), &traced));
    assert!(
        !sel(ipt(&[0]), &f),
        "flows without an IP trace id never match"
    );

    let enc = |v: bool| FlowFilter {
        encrypted: vec![v],
        ..Default::default()
    };
    assert!(sel(enc(false), &f));
    assert!(!sel(enc(true), &f));
    let mut encrypted = base_flow();
    encrypted.ip.as_mut().unwrap().encrypted = true;
    assert!(sel(enc(true), &encrypted));
}

#[test]
fn errors_name_list_index_field_and_value() {
    let bad_cidr = FlowFilter {
        source_ip: strings(&["10.0.0.0/33"]),
        ..Default::default()
    };
    let good = FlowFilter::default();
    let e = FlowFilters::new(std::slice::from_ref(&good), &[good.clone(), bad_cidr]).unwrap_err();
    assert_eq!(e.list, FilterList::Blacklist);
    assert_eq!(e.index, 1);
    assert_eq!(e.field, "source_ip");
    assert_eq!(
        e.to_string(),
        r#"blacklist[1].source_ip: invalid CIDR "10.0.0.0/33""#
    );

    assert_eq!(
        err(FlowFilter {
            destination_ip: strings(&["10.0.0.300"]),
            ..Default::default()
        }),
        r#"whitelist[0].destination_ip: invalid IP address "10.0.0.300""#
    );
    assert_eq!(
        err(FlowFilter {
            dns_query: strings(&["*"]),
            ..Default::default()
        }),
        "whitelist[0].dns_query: invalid regular expression \"*\": regex parse error:\n    *\n    ^\nerror: repetition operator missing expression"
    );
    assert!(
        err(FlowFilter {
            http_path: strings(&["(unclosed"]),
            ..Default::default()
        })
        .starts_with(r#"whitelist[0].http_path: invalid regular expression "(unclosed": "#)
    );
    assert!(
        err(FlowFilter {
            http_url: strings(&["[z-a]"]),
            ..Default::default()
        })
        .starts_with(r#"whitelist[0].http_url: invalid regular expression "[z-a]""#)
    );
    assert_eq!(
        err(FlowFilter {
            source_label: strings(&["app in a"]),
            ..Default::default()
        }),
        r#"whitelist[0].source_label: invalid label selector "app in a": found 'a', expected: '('"#
    );
    assert_eq!(
        err(FlowFilter {
            destination_label: strings(&["App/x=y"]),
            ..Default::default()
        }),
        "whitelist[0].destination_label: invalid label selector \"App/x=y\": invalid label key \"App/x\": the prefix must be a lowercase DNS subdomain"
    );
    assert_eq!(
        err(FlowFilter {
            node_labels: strings(&["zone=a b"]),
            ..Default::default()
        }),
        r#"whitelist[0].node_labels: invalid label selector "zone=a b": found 'b', expected: ',' or end of string"#
    );
    assert_eq!(
        err(FlowFilter {
            http_status_code: strings(&["4xx"]),
            ..Default::default()
        }),
        r#"whitelist[0].http_status_code: invalid HTTP status code pattern "4xx", expected e.g. "404", "4+" or "50+""#
    );
    assert_eq!(
        err(FlowFilter {
            source_port: strings(&["65536"]),
            ..Default::default()
        }),
        r#"whitelist[0].source_port: invalid port "65536", expected a number from 0 to 65535"#
    );
    assert_eq!(
        err(FlowFilter {
            destination_port: strings(&["+80"]),
            ..Default::default()
        }),
        r#"whitelist[0].destination_port: invalid port "+80", expected a number from 0 to 65535"#
    );
    assert!(
        err(FlowFilter {
            protocol: strings(&["quic"]),
            ..Default::default()
        })
        .starts_with(r#"whitelist[0].protocol: unknown protocol "quic", expected one of"#)
    );
    assert_eq!(
        err(FlowFilter {
            source_pod: strings(&[""]),
            ..Default::default()
        }),
        r#"whitelist[0].source_pod: invalid pod or service name "", expected [namespace/][name-prefix]"#
    );
    assert_eq!(
        err(FlowFilter {
            destination_service: strings(&["/"]),
            ..Default::default()
        }),
        r#"whitelist[0].destination_service: invalid pod or service name "/", expected [namespace/][name-prefix]"#
    );
    assert_eq!(
        err(FlowFilter {
            source_pod: strings(&["a/b/c"]),
            ..Default::default()
        }),
        r#"whitelist[0].source_pod: invalid pod or service name "a/b/c", expected [namespace/][name-prefix]"#
    );
    assert_eq!(
        err(FlowFilter {
            source_fqdn: strings(&["ok.io", "bad_*.io!"]),
            ..Default::default()
        }),
        r#"whitelist[0].source_fqdn: invalid DNS name pattern "bad_*.io!": character '!' is not allowed"#
    );
    assert_eq!(
        err(FlowFilter {
            destination_fqdn: strings(&["."]),
            ..Default::default()
        }),
        r#"whitelist[0].destination_fqdn: invalid DNS name pattern ".": empty pattern"#
    );
    assert_eq!(
        err(FlowFilter {
            node_name: strings(&["a/b/c"]),
            ..Default::default()
        }),
        r#"whitelist[0].node_name: invalid node name pattern "a/b/c": more than one '/'"#
    );
    assert_eq!(
        err(FlowFilter {
            source_cluster_name: strings(&["east", ""]),
            ..Default::default()
        }),
        "whitelist[0].source_cluster_name: cluster name must not be empty"
    );
}

#[test]
fn http_fields_require_l7_event_type() {
    let e = err(FlowFilter {
        http_status_code: strings(&["5+"]),
        event_type: vec![EventTypeFilter {
            r#type: 1,
            ..Default::default()
        }],
        ..Default::default()
    });
    assert_eq!(
        e,
        "whitelist[0].http_status_code: HTTP filters need event_type to be empty or to include l7 events (type 129)"
    );
    let e = err(FlowFilter {
        http_header: vec![HttpHeader {
            key: "a".into(),
            value: "b".into(),
        }],
        event_type: vec![EventTypeFilter {
            r#type: 4,
            ..Default::default()
        }],
        ..Default::default()
    });
    assert!(e.starts_with("whitelist[0].http_header: HTTP filters need event_type"));
}

#[test]
fn cel_expressions_are_rejected() {
    let e = err(FlowFilter {
        experimental: Some(flow::flow_filter::Experimental {
            cel_expression: strings(&["_flow.verdict == Verdict.DROPPED"]),
        }),
        ..Default::default()
    });
    assert_eq!(
        e,
        r#"whitelist[0].experimental.cel_expression: CEL expressions are not supported by weir: "_flow.verdict == Verdict.DROPPED""#
    );
    // An empty experimental block is fine.
    let ok = FlowFilter {
        experimental: Some(flow::flow_filter::Experimental {
            cel_expression: vec![],
        }),
        ..Default::default()
    };
    assert!(sel(ok, &base_flow()));
}

#[test]
fn filters_from_hubble_cli_json() {
    // `hubble observe -t drop -n kube-system --print-raw-filters` output.
    let whitelist: Vec<FlowFilter> = serde_json::from_str(
        r#"[{"source_pod":["kube-system/"],"event_type":[{"type":1}]},
            {"destination_pod":["kube-system/"],"event_type":[{"type":1}]}]"#,
    )
    .unwrap();
    let filters = wl(whitelist);
    let mut f = base_flow();
    assert!(!filters.matches(&f));
    f.destination.as_mut().unwrap().namespace = "kube-system".into();
    assert!(filters.matches(&f));
    f.event_type = Some(CiliumEventType {
        r#type: 4,
        sub_type: 0,
    });
    assert!(!filters.matches(&f));
}
