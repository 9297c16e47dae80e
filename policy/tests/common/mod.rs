//! A small cluster for the integration tests.
#![allow(dead_code)]

use std::net::IpAddr;

use weir_policy::compiled::{Direction, PolicyRef};
use weir_policy::{
    ClusterSpec, ClusterState, DropReason, EndpointSpec, Options, Packet, PolicySet, Trace,
    Verdict, evaluate,
};

pub const CLUSTER: &str = r#"
name: lab
podCIDRs: [10.0.0.0/16, "fd00::/64"]
nodes:
  - {name: n1, ips: [192.168.1.1]}
  - {name: n2, ips: [192.168.1.2]}
namespaces:
  - {name: default, labels: {team: a}}
  - {name: prod, labels: {team: b}}
  - {name: kube-system}
"#;

pub const ENDPOINTS: &[&str] = &[
    "{name: web-0, namespace: default, node: n1, labels: {app: web}, ips: [10.0.1.1], interface: lxc1, namedPorts: {http: {port: 8080}}}",
    "{name: api-0, namespace: default, node: n1, labels: {app: api, tier: back}, serviceAccount: api, ips: [10.0.1.2], interface: lxc2, namedPorts: {http: {port: 9000}}}",
    "{name: web-1, namespace: prod, node: n2, labels: {app: web}, ips: [10.0.2.1, 'fd00::21'], interface: lxc3}",
    "{name: dns-0, namespace: kube-system, node: n2, labels: {k8s-app: kube-dns}, ips: [10.0.3.1], interface: lxc4, namedPorts: {dns: {port: 53, protocol: UDP}}}",
];

pub fn state() -> ClusterState {
    ClusterState {
        cluster: serde_yaml::from_str::<ClusterSpec>(CLUSTER).unwrap(),
        endpoints: ENDPOINTS
            .iter()
            .map(|e| serde_yaml::from_str::<EndpointSpec>(e).unwrap())
            .collect(),
    }
}

pub const WEB0: &str = "10.0.1.1";
pub const API0: &str = "10.0.1.2";
pub const WEB1: &str = "10.0.2.1";
pub const DNS0: &str = "10.0.3.1";
pub const N1: &str = "192.168.1.1";
pub const N2: &str = "192.168.1.2";
pub const WORLD: &str = "1.2.3.4";
pub const UNMANAGED: &str = "10.0.99.9";

pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
pub const SCTP: u8 = 132;
pub const ICMP: u8 = 1;

pub fn policies(yaml: &str) -> PolicySet {
    PolicySet::parse_str("test.yaml", yaml).unwrap_or_else(|e| panic!("{e}"))
}

pub fn packet(src: &str, dst: &str, protocol: u8, port: u16) -> Packet {
    Packet {
        src: src.parse::<IpAddr>().unwrap(),
        dst: dst.parse::<IpAddr>().unwrap(),
        protocol,
        src_port: 40000,
        dst_port: port,
    }
}

/// Evaluates with every endpoint enforced on its own node.
pub fn eval(set: &PolicySet, src: &str, dst: &str, protocol: u8, port: u16) -> Trace {
    evaluate(
        &state(),
        set,
        &Options::default(),
        &packet(src, dst, protocol, port),
    )
}

pub fn eval_with(
    set: &PolicySet,
    options: &Options,
    src: &str,
    dst: &str,
    protocol: u8,
    port: u16,
) -> Trace {
    evaluate(&state(), set, options, &packet(src, dst, protocol, port))
}

/// (verdict, reason, policy names) at one enforcement point.
pub fn at(trace: &Trace, direction: Direction) -> (Verdict, DropReason, Vec<String>) {
    let d = match direction {
        Direction::Ingress => trace.ingress.as_ref(),
        Direction::Egress => trace.egress.as_ref(),
    }
    .unwrap_or_else(|| panic!("no {direction} decision in\n{trace}"));
    (d.verdict, d.reason, d.policies.iter().map(name).collect())
}

pub fn name(r: &PolicyRef) -> String {
    if r.namespace.is_empty() {
        r.name.clone()
    } else {
        format!("{}/{}", r.namespace, r.name)
    }
}

pub fn allowed(names: &[&str]) -> (Verdict, DropReason, Vec<String>) {
    (
        Verdict::Allowed,
        DropReason::None,
        names.iter().map(|s| s.to_string()).collect(),
    )
}

pub fn denied(names: &[&str]) -> (Verdict, DropReason, Vec<String>) {
    (
        Verdict::Denied,
        DropReason::PolicyDenied,
        names.iter().map(|s| s.to_string()).collect(),
    )
}

pub fn deny_rule(names: &[&str]) -> (Verdict, DropReason, Vec<String>) {
    (
        Verdict::Denied,
        DropReason::PolicyDeny,
        names.iter().map(|s| s.to_string()).collect(),
    )
}
