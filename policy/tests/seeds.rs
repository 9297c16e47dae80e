//! The policies users expect (the seed articles), parsed and checked for a few semantics each.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use weir_policy::compiled::Notice;
use weir_policy::{
    ClusterState, DropReason, Options, Packet, PolicyKind, PolicySet, Verdict, evaluate,
};

fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

fn seeds() -> PolicySet {
    PolicySet::load_dir(&testdata("seeds")).unwrap_or_else(|e| panic!("{e}"))
}

fn state() -> ClusterState {
    ClusterState::load_dir(&testdata("seed-state")).unwrap()
}

fn ip(state: &ClusterState, ns: &str, name: &str) -> IpAddr {
    state
        .endpoint(ns, name)
        .unwrap_or_else(|| panic!("{ns}/{name}"))
        .ips[0]
}

type Outcome = (Verdict, DropReason, Vec<String>);

/// The decision at the destination (ingress) or the source (egress), every endpoint enforced.
fn check(
    set: &PolicySet,
    src: (&str, &str),
    dst: (&str, &str),
    proto: u8,
    port: u16,
    egress: bool,
) -> Outcome {
    let st = state();
    let packet = Packet {
        src: if src.0.is_empty() {
            src.1.parse().unwrap()
        } else {
            ip(&st, src.0, src.1)
        },
        dst: if dst.0.is_empty() {
            dst.1.parse().unwrap()
        } else {
            ip(&st, dst.0, dst.1)
        },
        protocol: proto,
        src_port: 33000,
        dst_port: port,
    };
    let t = evaluate(&st, set, &Options::default(), &packet);
    let d = if egress { t.egress } else { t.ingress }.expect("an enforcement point");
    let names = d
        .policies
        .iter()
        .map(|r| {
            if r.namespace.is_empty() {
                r.name.clone()
            } else {
                format!("{}/{}", r.namespace, r.name)
            }
        })
        .collect();
    (d.verdict, d.reason, names)
}

fn ok(names: &[&str]) -> Outcome {
    (
        Verdict::Allowed,
        DropReason::None,
        names.iter().map(|s| s.to_string()).collect(),
    )
}

fn no(names: &[&str]) -> Outcome {
    (
        Verdict::Denied,
        DropReason::PolicyDenied,
        names.iter().map(|s| s.to_string()).collect(),
    )
}

const DDA: &str = "default-deny-all";

#[test]
fn every_seed_policy_parses() {
    let set = seeds();
    let got: Vec<(PolicyKind, String, String)> = set
        .policies()
        .iter()
        .map(|p| (p.kind, p.namespace.clone(), p.name.clone()))
        .collect();
    let cnp = PolicyKind::CiliumNetworkPolicy;
    let want = vec![
        (cnp, "default", "allow-aws-egress"),
        (cnp, "default", "catalog-grpc-policy"),
        (cnp, "default", "dns-filter"),
        (cnp, "default", "grpc-restrict-methods"),
        (cnp, "default", "kafka-produce"),
        (cnp, "default", "public-api-only"),
        (cnp, "default", "user-service-api-policy"),
        (cnp, "default", "user-service-api-policy-headers"),
        (cnp, "kafka", "kafka-broker-policy"),
        (cnp, "production", "api-l7-policy"),
        (PolicyKind::CiliumClusterwideNetworkPolicy, "", DDA),
    ];
    let mut want: Vec<(PolicyKind, String, String)> = want
        .into_iter()
        .map(|(k, n, m)| (k, n.to_string(), m.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    let origin = &set.get(cnp, "default", "dns-filter").unwrap().origin;
    assert!(origin.file.ends_with("000_cilium_l7_policies.yaml"));
    assert_eq!(origin.document, 4);
}

#[test]
fn l7_rules_and_fqdns_are_reported_as_not_enforced() {
    let notices = seeds().notices();
    let find = |name: &str, location: &str| -> Vec<String> {
        notices
            .iter()
            .filter(|n: &&Notice| n.policy.name == name && n.location == location)
            .map(|n| n.message.clone())
            .collect()
    };
    assert_eq!(
        find("public-api-only", "spec.ingress[0].toPorts[0].rules.http"),
        vec!["HTTP rules on port 80/TCP are not enforced yet: the port is allowed at L4"]
    );
    assert_eq!(
        find("kafka-produce", "spec.ingress[0].toPorts[0].rules.kafka"),
        vec!["Kafka rules on port 9092/TCP are not enforced yet: the port is allowed at L4"]
    );
    assert_eq!(
        find("dns-filter", "spec.egress[0].toPorts[0].rules.dns"),
        vec!["DNS rules on port 53/ANY are not enforced yet: the port is allowed at L4"]
    );
    assert_eq!(
        find("dns-filter", "spec.egress[1].toFQDNs"),
        vec![
            "toFQDNs selects no addresses yet (DNS-based policy is not implemented): this rule allows nothing"
        ]
    );
    assert_eq!(
        find("api-l7-policy", "spec.ingress[0].toPorts[0].rules.http"),
        vec!["HTTP rules on port 8080/TCP are not enforced yet: the port is allowed at L4"]
    );
    assert!(find(DDA, "spec").is_empty());
    assert_eq!(notices.len(), 14, "{notices:#?}");
}

#[test]
fn l7_seed_policies_allow_their_ports_at_l4() {
    let set = seeds();
    let tcp = 6;
    // public-api-only: env=prod → app=service on 80 only.
    assert_eq!(
        check(
            &set,
            ("default", "prod-client"),
            ("default", "service-0"),
            tcp,
            80,
            false
        ),
        ok(&["default/public-api-only"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "prod-client"),
            ("default", "service-0"),
            tcp,
            8080,
            false
        ),
        no(&[DDA, "default/public-api-only"])
    );
    // grpc-restrict-methods and kafka-produce.
    assert_eq!(
        check(
            &set,
            ("default", "grpc-client"),
            ("default", "grpc-server"),
            tcp,
            50051,
            false
        ),
        ok(&["default/grpc-restrict-methods"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "empire-hq"),
            ("default", "kafka-0"),
            tcp,
            9092,
            false
        ),
        ok(&["default/kafka-produce"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "grpc-client"),
            ("default", "kafka-0"),
            tcp,
            9092,
            false
        ),
        no(&[DDA, "default/kafka-produce"])
    );
    // api-l7-policy is namespaced to production.
    assert_eq!(
        check(
            &set,
            ("production", "web-frontend"),
            ("production", "api-server"),
            tcp,
            8080,
            false
        ),
        ok(&["production/api-l7-policy"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "frontend"),
            ("production", "api-server"),
            tcp,
            8080,
            false
        ),
        no(&[DDA, "production/api-l7-policy"])
    );
    // user-service policies: frontend is allowed by both, billing by one.
    assert_eq!(
        check(
            &set,
            ("default", "frontend"),
            ("default", "users"),
            tcp,
            80,
            false
        ),
        ok(&[
            "default/user-service-api-policy",
            "default/user-service-api-policy-headers"
        ])
    );
    assert_eq!(
        check(
            &set,
            ("default", "billing"),
            ("default", "users"),
            tcp,
            80,
            false
        ),
        ok(&["default/user-service-api-policy"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "reco"),
            ("default", "users"),
            tcp,
            80,
            false
        ),
        no(&[
            DDA,
            "default/user-service-api-policy",
            "default/user-service-api-policy-headers"
        ])
    );
    assert_eq!(
        check(
            &set,
            ("default", "inventory"),
            ("default", "catalog"),
            tcp,
            50051,
            false
        ),
        ok(&["default/catalog-grpc-policy"])
    );
    assert_eq!(
        check(
            &set,
            ("kafka", "shipping"),
            ("kafka", "kafka-broker"),
            tcp,
            9092,
            false
        ),
        ok(&["kafka/kafka-broker-policy"])
    );
}

#[test]
fn dns_and_default_deny_seeds() {
    let set = seeds();
    let (tcp, udp) = (6, 17);
    // dns-filter: port 53 of any protocol to kube-dns; default-deny-all also allows UDP 53.
    assert_eq!(
        check(
            &set,
            ("default", "alliance-0"),
            ("kube-system", "coredns"),
            udp,
            53,
            true
        ),
        ok(&[DDA, "default/dns-filter"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "alliance-0"),
            ("kube-system", "coredns"),
            tcp,
            53,
            true
        ),
        ok(&["default/dns-filter"])
    );
    // toFQDNs selects nothing yet: HTTPS to the world is denied by default.
    assert_eq!(
        check(
            &set,
            ("default", "alliance-0"),
            ("", "104.198.14.52"),
            tcp,
            443,
            true
        ),
        no(&[DDA, "default/dns-filter"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "backend"),
            ("kube-system", "coredns"),
            udp,
            53,
            true
        ),
        ok(&[DDA, "default/allow-aws-egress"])
    );
    assert_eq!(
        check(
            &set,
            ("default", "backend"),
            ("kube-system", "coredns"),
            tcp,
            53,
            true
        ),
        no(&[DDA, "default/allow-aws-egress"])
    );
    // default-deny-all: every endpoint, ingress only from the host, egress only DNS.
    assert_eq!(
        check(
            &set,
            ("default", "catalog"),
            ("", "1.1.1.1"),
            tcp,
            443,
            true
        ),
        no(&[DDA])
    );
    assert_eq!(
        check(
            &set,
            ("", "192.168.10.1"),
            ("default", "catalog"),
            tcp,
            8080,
            false
        ),
        ok(&[DDA])
    );
    assert_eq!(
        check(
            &set,
            ("", "192.168.10.2"),
            ("default", "catalog"),
            tcp,
            8080,
            false
        ),
        no(&[DDA, "default/catalog-grpc-policy"])
    );
}
