//! The policies users expect (the seed articles), parsed and checked for a few semantics each.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use weir_policy::compiled::{Direction, Notice};
use weir_policy::http::HttpRequest;
use weir_policy::{
    ClusterState, DropReason, Evaluator, Options, Packet, PolicyKind, PolicySet, Verdict, compile,
    evaluate,
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
fn unenforced_l7_rules_and_fqdns_are_reported() {
    let notices = seeds().notices();
    let find = |name: &str, location: &str| -> Vec<String> {
        notices
            .iter()
            .filter(|n: &&Notice| n.policy.name == name && n.location == location)
            .map(|n| n.message.clone())
            .collect()
    };
    // HTTP rules are enforced: no notice.
    assert!(
        notices.iter().all(|n| !n.location.contains("rules.http")),
        "{notices:#?}"
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
    assert!(find(DDA, "spec").is_empty());
    assert_eq!(notices.len(), NOTICES, "{notices:#?}");
}

/// Notices of the seed policies (Kafka, DNS, toFQDNs and the like).
const NOTICES: usize = 6;

fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: method.as_bytes().to_vec(),
        target: target.as_bytes().to_vec(),
        version: 1,
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect(),
    }
}

/// The evaluator's decision for a request from `src` to `dst:port`, and (when allowed) the
/// deciding rule as `namespace/name location`; the compiled tables of the destination's node
/// must agree.
fn http(src: (&str, &str), dst: (&str, &str), port: u16, req: &HttpRequest) -> Option<String> {
    let (set, st) = (seeds(), state());
    let packet = Packet {
        src: ip(&st, src.0, src.1),
        dst: ip(&st, dst.0, dst.1),
        protocol: 6,
        src_port: 33000,
        dst_port: port,
    };
    // At the destination (the seeds' default-deny-all denies most egress).
    let ev = Evaluator::new(&st, &set, &Options::default());
    let ep = st.endpoint(dst.0, dst.1).unwrap();
    let remote = ev.identity_of(packet.src, Some(&ep.node));
    let d = ev.decide_http_at(ep, Direction::Ingress, remote, 6, port, req);
    let got = d
        .rule
        .as_ref()
        .map(|(p, location)| format!("{}/{} {location}", p.namespace, p.name));
    assert_eq!(d.allowed, got.is_some() || d.http_rules.is_none(), "{d:?}");
    // The destination's node: its ingress entry and tables decide the same.
    let compiled = compile(&st, &set, &Options::for_node(&ep.node)).unwrap();
    let cep = compiled
        .endpoints
        .iter()
        .find(|e| e.namespace == dst.0 && e.name == dst.1)
        .unwrap();
    let entry = cep
        .ingress
        .entries
        .iter()
        .filter(|e| e.identity == remote && e.protocol == 6 && e.port == port)
        .find(|e| e.port_prefix_len == 16)
        .unwrap_or_else(|| panic!("no entry for {remote} {port}: {:?}", cep.ingress.entries));
    assert_ne!(entry.l7_rules, 0);
    let rules = &compiled.http_rule_sets[&entry.l7_rules];
    assert_eq!(Some(rules), d.http_rules.as_ref());
    let datapath = compiled.http_tables[&entry.l7_rules].decide(req).map(|i| {
        let r = &rules.rules[i];
        format!("{}/{} {}", r.policy.namespace, r.policy.name, r.location)
    });
    assert_eq!(datapath, got);
    got
}

#[test]
fn http_seed_rules_are_enforced() {
    let public = "default/public-api-only spec.ingress[0].toPorts[0].rules.http[0]";
    let (prod, service) = (("default", "prod-client"), ("default", "service-0"));
    assert_eq!(
        http(prod, service, 80, &request("GET", "/public", &[])).as_deref(),
        Some(public)
    );
    assert_eq!(
        http(prod, service, 80, &request("GET", "/public?x=1", &[])),
        None
    );
    assert_eq!(
        http(prod, service, 80, &request("POST", "/public", &[])),
        None
    );
    assert_eq!(
        http(prod, service, 80, &request("get", "/public", &[])),
        None
    );

    // Two policies allow frontend → users:80; their HTTP rules are merged.
    let (frontend, users) = (("default", "frontend"), ("default", "users"));
    assert_eq!(
        http(
            frontend,
            users,
            80,
            &request("GET", "/api/v1/users/42", &[])
        )
        .as_deref(),
        Some("default/user-service-api-policy spec.ingress[0].toPorts[0].rules.http[0]")
    );
    assert_eq!(
        http(frontend, users, 80, &request("GET", "/api/v2/users", &[])),
        None
    );
    // billing's POST rule is for billing only.
    assert_eq!(
        http(
            frontend,
            users,
            80,
            &request("POST", "/api/v1/payments", &[])
        ),
        None
    );
    assert_eq!(
        http(
            ("default", "billing"),
            users,
            80,
            &request("POST", "/api/v1/payments", &[])
        )
        .as_deref(),
        Some("default/user-service-api-policy spec.ingress[1].toPorts[0].rules.http[0]")
    );

    // api-l7-policy: the POST needs its Content-Type header.
    let (web, api) = (("production", "web-frontend"), ("production", "api-server"));
    let orders = "production/api-l7-policy spec.ingress[0].toPorts[0].rules.http[1]";
    let json = [("content-type", " application/json ")];
    assert_eq!(
        http(web, api, 8080, &request("POST", "/api/v1/orders", &json)).as_deref(),
        Some(orders)
    );
    assert_eq!(
        http(web, api, 8080, &request("POST", "/api/v1/orders", &[])),
        None
    );
    assert_eq!(
        http(
            web,
            api,
            8080,
            &request("POST", "/api/v1/orders", &[("Content-Type", "text/plain")])
        ),
        None
    );

    // gRPC over HTTP/2 is not followed by the HTTP/1 matcher: the path still decides here.
    assert_eq!(
        http(
            ("default", "grpc-client"),
            ("default", "grpc-server"),
            50051,
            &request("POST", "/helloworld.Greeter/SayHello", &[])
        )
        .as_deref(),
        Some("default/grpc-restrict-methods spec.ingress[0].toPorts[0].rules.http[0]")
    );
}

#[test]
fn l7_seed_policies_allow_their_ports() {
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
