//! The evaluator's semantics, verdict by verdict.

mod common;

use common::*;
use weir_policy::compiled::Direction::{Egress, Ingress};
use weir_policy::compiled::reserved;
use weir_policy::{Options, PolicySet, TraceTarget, Verdict, trace};

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn cnp(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{}---\n",
        indent(spec)
    )
}

fn ccnp(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata: {{name: {name}}}\nspec:\n{}---\n",
        indent(spec)
    )
}

fn knp(name: &str, ns: &str, spec: &str) -> String {
    format!(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{}---\n",
        indent(spec)
    )
}

#[test]
fn no_policy_allows_everything_unenforced() {
    let set = PolicySet::new();
    let t = eval(&set, WEB0, API0, TCP, 80);
    assert_eq!(at(&t, Egress), allowed(&[]));
    assert_eq!(at(&t, Ingress), allowed(&[]));
    assert!(!t.ingress.as_ref().unwrap().enforced);
    assert_eq!(t.verdict(), Verdict::Allowed);
}

#[test]
fn namespaced_empty_selectors_stay_in_the_namespace() {
    let set = policies(&cnp(
        "same-ns",
        "default",
        "endpointSelector: {}\ningress:\n- fromEndpoints: [{}]",
    ));
    assert_eq!(
        at(&eval(&set, API0, WEB0, TCP, 80), Ingress),
        allowed(&["default/same-ns"])
    );
    assert_eq!(
        at(&eval(&set, WEB1, WEB0, TCP, 80), Ingress),
        denied(&["default/same-ns"])
    );
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, TCP, 80), Ingress),
        denied(&["default/same-ns"])
    );
    // prod/web-1 is not selected by a policy of namespace default.
    let t = eval(&set, WEB0, WEB1, TCP, 80);
    assert_eq!(at(&t, Ingress), allowed(&[]));
    assert!(!t.ingress.unwrap().enforced);
}

#[test]
fn explicit_namespace_and_namespace_labels_are_kept() {
    let set = policies(&cnp(
        "from-prod",
        "default",
        "endpointSelector: {matchLabels: {app: web}}\ningress:\n- fromEndpoints:\n  - matchLabels: {k8s:io.kubernetes.pod.namespace: prod}\n  - matchLabels: {k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name: kube-system}",
    ));
    assert_eq!(
        at(&eval(&set, WEB1, WEB0, TCP, 80), Ingress),
        allowed(&["default/from-prod"])
    );
    assert_eq!(
        at(&eval(&set, DNS0, WEB0, UDP, 1), Ingress),
        allowed(&["default/from-prod"])
    );
    assert_eq!(
        at(&eval(&set, API0, WEB0, TCP, 80), Ingress),
        denied(&["default/from-prod"])
    );
}

#[test]
fn clusterwide_empty_selector_means_all_pods_but_not_reserved_identities() {
    let set = policies(&ccnp(
        "pods",
        "endpointSelector: {}\ningress:\n- fromEndpoints: [{}]",
    ));
    assert_eq!(
        at(&eval(&set, WEB1, WEB0, TCP, 80), Ingress),
        allowed(&["pods"])
    );
    assert_eq!(
        at(&eval(&set, DNS0, WEB1, TCP, 80), Ingress),
        allowed(&["pods"])
    );
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, TCP, 80), Ingress),
        denied(&["pods"])
    );
    assert_eq!(
        at(&eval(&set, N2, WEB0, TCP, 80), Ingress),
        denied(&["pods"])
    );
    assert_eq!(
        at(&eval(&set, UNMANAGED, WEB0, TCP, 80), Ingress),
        denied(&["pods"])
    );
}

#[test]
fn deny_wins_over_allow_and_lists_every_deny() {
    let set = policies(&format!(
        "{}{}{}",
        cnp(
            "allow-all",
            "default",
            "endpointSelector: {}\ningress:\n- fromEntities: [all]"
        ),
        cnp(
            "no-api-80",
            "default",
            "endpointSelector: {matchLabels: {app: web}}\ningressDeny:\n- fromEndpoints: [{matchLabels: {app: api}}]\n  toPorts: [{ports: [{port: '80', protocol: TCP}]}]"
        ),
        ccnp(
            "no-80",
            "endpointSelector: {}\ningressDeny:\n- toPorts: [{ports: [{port: '80'}]}]"
        ),
    ));
    assert_eq!(
        at(&eval(&set, API0, WEB0, TCP, 80), Ingress),
        deny_rule(&["no-80", "default/no-api-80"])
    );
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, UDP, 80), Ingress),
        deny_rule(&["no-80"])
    );
    assert_eq!(
        at(&eval(&set, API0, WEB0, TCP, 81), Ingress),
        allowed(&["default/allow-all"])
    );
}

#[test]
fn deny_only_policy_enables_default_deny_unless_disabled() {
    let deny = "ingressDeny:\n- fromEntities: [world]";
    let set = policies(&cnp(
        "deny-world",
        "default",
        &format!("endpointSelector: {{}}\n{deny}"),
    ));
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, TCP, 80), Ingress),
        deny_rule(&["default/deny-world"])
    );
    assert_eq!(
        at(&eval(&set, API0, WEB0, TCP, 80), Ingress),
        denied(&["default/deny-world"])
    );
    let set = policies(&cnp(
        "deny-world",
        "default",
        &format!("endpointSelector: {{}}\nenableDefaultDeny: {{ingress: false}}\n{deny}"),
    ));
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, TCP, 80), Ingress),
        deny_rule(&["default/deny-world"])
    );
    let t = eval(&set, API0, WEB0, TCP, 80);
    assert_eq!(at(&t, Ingress), allowed(&[]));
    assert!(!t.ingress.unwrap().enforced);
}

#[test]
fn empty_rule_enforces_and_empty_list_does_not() {
    let set = policies(&cnp(
        "lockdown",
        "default",
        "endpointSelector: {}\negress:\n- {}",
    ));
    assert_eq!(
        at(&eval(&set, WEB0, API0, TCP, 80), Egress),
        denied(&["default/lockdown"])
    );
    let set = policies(&cnp(
        "nothing",
        "default",
        "endpointSelector: {}\negress: []",
    ));
    assert_eq!(at(&eval(&set, WEB0, API0, TCP, 80), Egress), allowed(&[]));
}

#[test]
fn ports_without_peers_allow_every_peer() {
    let set = policies(&cnp(
        "web-80",
        "default",
        "endpointSelector: {matchLabels: {app: web}}\ningress:\n- toPorts: [{ports: [{port: '80', protocol: TCP}]}]",
    ));
    for src in [API0, WEB1, WORLD, N2, UNMANAGED] {
        assert_eq!(
            at(&eval(&set, src, WEB0, TCP, 80), Ingress),
            allowed(&["default/web-80"]),
            "{src}"
        );
        assert_eq!(
            at(&eval(&set, src, WEB0, TCP, 443), Ingress),
            denied(&["default/web-80"]),
            "{src}"
        );
    }
}

#[test]
fn entities_and_reserved_identities() {
    let set = policies(&cnp(
        "ents",
        "default",
        "endpointSelector: {matchLabels: {app: web}}\ningress:\n- fromEntities: [remote-node]\n  toPorts: [{ports: [{port: '1'}]}]\n- fromEntities: [world]\n  toPorts: [{ports: [{port: '2'}]}]\n- fromEntities: [cluster]\n  toPorts: [{ports: [{port: '3'}]}]\n- fromEntities: [host]\n  toPorts: [{ports: [{port: '4'}]}]",
    ));
    let t = eval(&set, N2, WEB0, TCP, 1);
    assert_eq!(t.src.identity, reserved::REMOTE_NODE);
    assert_eq!(at(&t, Ingress), allowed(&["default/ents"]));
    let t = eval(&set, WORLD, WEB0, TCP, 2);
    assert_eq!(t.src.identity, reserved::WORLD);
    assert_eq!(at(&t, Ingress), allowed(&["default/ents"]));
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, TCP, 3), Ingress),
        denied(&["default/ents"])
    );
    for src in [UNMANAGED, N2, WEB1] {
        assert_eq!(
            at(&eval(&set, src, WEB0, TCP, 3), Ingress),
            allowed(&["default/ents"]),
            "{src}"
        );
    }
    // The local node is `host`: allowed by allow-localhost on any port, by the rule on port 4.
    let t = eval(&set, N1, WEB0, TCP, 9);
    assert_eq!(t.src.identity, reserved::HOST);
    assert_eq!(at(&t, Ingress), allowed(&[]));
    assert_eq!(
        at(&eval(&set, N1, WEB0, TCP, 4), Ingress),
        allowed(&["default/ents"])
    );
    let strict = Options {
        allow_localhost: false,
        ..Options::default()
    };
    assert_eq!(
        at(&eval_with(&set, &strict, N1, WEB0, TCP, 9), Ingress),
        denied(&["default/ents"])
    );
}

#[test]
fn allow_localhost_yields_to_explicit_denies() {
    let set = policies(&cnp(
        "no-host",
        "default",
        "endpointSelector: {}\ningressDeny:\n- fromEntities: [host]\n  toPorts: [{ports: [{port: '22', protocol: TCP}]}]",
    ));
    assert_eq!(
        at(&eval(&set, N1, WEB0, TCP, 22), Ingress),
        deny_rule(&["default/no-host"])
    );
    assert_eq!(at(&eval(&set, N1, WEB0, TCP, 23), Ingress), allowed(&[]));
}

#[test]
fn named_ports_resolve_against_the_destination() {
    let set = policies(&format!(
        "{}{}",
        cnp(
            "http-in",
            "default",
            "endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: http}]}]"
        ),
        cnp(
            "http-out",
            "default",
            "endpointSelector: {matchLabels: {app: web}}\negress:\n- toPorts: [{ports: [{port: http, protocol: TCP}]}]"
        ),
    ));
    // Ingress: each endpoint's own `http` port.
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, TCP, 8080), Ingress),
        allowed(&["default/http-in"])
    );
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, TCP, 9000), Ingress),
        denied(&["default/http-in"])
    );
    assert_eq!(
        at(&eval(&set, WORLD, API0, TCP, 9000), Ingress),
        allowed(&["default/http-in"])
    );
    assert_eq!(
        at(&eval(&set, WORLD, API0, UDP, 9000), Ingress),
        denied(&["default/http-in"])
    );
    // Egress: any endpoint's `http` port.
    assert_eq!(
        at(&eval(&set, WEB0, WORLD, TCP, 9000), Egress),
        allowed(&["default/http-out"])
    );
    assert_eq!(
        at(&eval(&set, WEB0, WORLD, TCP, 8080), Egress),
        allowed(&["default/http-out"])
    );
    assert_eq!(
        at(&eval(&set, WEB0, WORLD, TCP, 80), Egress),
        denied(&["default/http-out"])
    );
}

#[test]
fn icmp_types_ranges_and_protocol_any() {
    let set = policies(&cnp(
        "l4",
        "default",
        "endpointSelector: {matchLabels: {app: web}}\ningress:\n- icmps: [{fields: [{type: EchoRequest}, {type: 128, family: IPv6}]}]\n- toPorts: [{ports: [{port: '1000', endPort: 1010, protocol: TCP}, {port: '53'}]}]",
    ));
    let ok = allowed(&["default/l4"]);
    let no = denied(&["default/l4"]);
    assert_eq!(at(&eval(&set, WORLD, WEB0, ICMP, 8), Ingress), ok);
    assert_eq!(at(&eval(&set, WORLD, WEB0, ICMP, 0), Ingress), no);
    assert_eq!(at(&eval(&set, WORLD, WEB0, TCP, 8), Ingress), no);
    assert_eq!(at(&eval(&set, WORLD, WEB0, TCP, 1000), Ingress), ok);
    assert_eq!(at(&eval(&set, WORLD, WEB0, TCP, 1010), Ingress), ok);
    assert_eq!(at(&eval(&set, WORLD, WEB0, TCP, 1011), Ingress), no);
    assert_eq!(at(&eval(&set, WORLD, WEB0, UDP, 1005), Ingress), no);
    for proto in [TCP, UDP, SCTP] {
        assert_eq!(at(&eval(&set, WORLD, WEB0, proto, 53), Ingress), ok);
    }
    assert_eq!(at(&eval(&set, WORLD, WEB0, ICMP, 53), Ingress), no);
}

#[test]
fn cidr_rules_select_only_addresses_outside_the_cluster() {
    let set = policies(&cnp(
        "out",
        "default",
        "endpointSelector: {matchLabels: {app: web}}\negress:\n- toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]\n- toCIDR: [10.0.0.0/8, 192.168.0.0/16]",
    ));
    let ok = allowed(&["default/out"]);
    let no = denied(&["default/out"]);
    assert_eq!(at(&eval(&set, WEB0, "203.0.113.5", TCP, 1), Egress), ok);
    assert_eq!(at(&eval(&set, WEB0, "203.0.113.200", TCP, 1), Egress), no);
    assert_eq!(at(&eval(&set, WEB0, "10.1.0.1", TCP, 1), Egress), ok);
    // Pods, pod-CIDR addresses and nodes keep their identities.
    assert_eq!(at(&eval(&set, WEB0, API0, TCP, 1), Egress), no);
    assert_eq!(at(&eval(&set, WEB0, UNMANAGED, TCP, 1), Egress), no);
    assert_eq!(at(&eval(&set, WEB0, N2, TCP, 1), Egress), no);
    assert_eq!(at(&eval(&set, WEB0, "192.168.7.7", TCP, 1), Egress), ok);
    let t = eval(&set, WEB0, "203.0.113.5", TCP, 1);
    assert_eq!(t.dst.labels, vec!["cidr:203.0.113.0/24", "reserved:world"]);
    assert!(t.dst.identity & reserved::LOCAL_SCOPE != 0);
}

#[test]
fn world_ipv4_and_cidr_zero_are_per_family() {
    let set = policies(&cnp(
        "v4",
        "prod",
        "endpointSelector: {matchLabels: {app: web}}\negress:\n- toEntities: [world-ipv4]",
    ));
    assert_eq!(
        at(&eval(&set, WEB1, WORLD, TCP, 1), Egress),
        allowed(&["prod/v4"])
    );
    assert_eq!(
        at(&eval(&set, "fd00::21", "2001:db8::1", TCP, 1), Egress),
        denied(&["prod/v4"])
    );
    let set = policies(&cnp(
        "v6",
        "prod",
        "endpointSelector: {matchLabels: {app: web}}\negress:\n- toCIDR: ['::/0']",
    ));
    assert_eq!(
        at(&eval(&set, WEB1, WORLD, TCP, 1), Egress),
        denied(&["prod/v6"])
    );
    assert_eq!(
        at(&eval(&set, "fd00::21", "2001:db8::1", TCP, 1), Egress),
        allowed(&["prod/v6"])
    );
    let set = policies(&cnp(
        "any",
        "prod",
        "endpointSelector: {matchLabels: {app: web}}\negress:\n- toEntities: [world]",
    ));
    assert_eq!(
        at(&eval(&set, WEB1, WORLD, TCP, 1), Egress),
        allowed(&["prod/any"])
    );
    assert_eq!(
        at(&eval(&set, "fd00::21", "2001:db8::1", TCP, 1), Egress),
        allowed(&["prod/any"])
    );
}

#[test]
fn several_allowing_policies_are_all_listed() {
    let set = policies(&format!(
        "{}{}",
        cnp(
            "a",
            "default",
            "endpointSelector: {}\ningress:\n- fromEndpoints: [{matchLabels: {app: api}}]"
        ),
        ccnp(
            "b",
            "endpointSelector: {matchLabels: {app: web}}\ningress:\n- fromEndpoints: [{matchExpressions: [{key: tier, operator: In, values: [back]}]}]"
        ),
    ));
    assert_eq!(
        at(&eval(&set, API0, WEB0, TCP, 80), Ingress),
        allowed(&["b", "default/a"])
    );
    assert_eq!(
        at(&eval(&set, WEB1, WEB0, TCP, 80), Ingress),
        denied(&["b", "default/a"])
    );
}

#[test]
fn network_policy_semantics() {
    // Egress rules without policyTypes: both directions are enforced.
    let set = policies(&knp(
        "dns-only",
        "default",
        "podSelector: {}\negress:\n- to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]\n  ports: [{port: 53, protocol: UDP}]",
    ));
    assert_eq!(
        at(&eval(&set, WEB0, DNS0, UDP, 53), Egress),
        allowed(&["default/dns-only"])
    );
    assert_eq!(
        at(&eval(&set, WEB0, DNS0, TCP, 53), Egress),
        denied(&["default/dns-only"])
    );
    assert_eq!(
        at(&eval(&set, WEB1, WEB0, TCP, 80), Ingress),
        denied(&["default/dns-only"])
    );
    // Only Egress listed: ingress stays open.
    let set = policies(&knp(
        "egress-only",
        "default",
        "podSelector: {}\npolicyTypes: [Egress]",
    ));
    assert_eq!(at(&eval(&set, WEB1, WEB0, TCP, 80), Ingress), allowed(&[]));
    assert_eq!(
        at(&eval(&set, WEB0, WEB1, TCP, 80), Egress),
        denied(&["default/egress-only"])
    );
    // Peers: pods of the namespace, namespaces by label, both, ipBlock; `ingress: [{}]` allows all.
    let set = policies(&knp(
        "peers",
        "default",
        "podSelector: {matchLabels: {app: web}}\ningress:\n- from:\n  - podSelector: {matchLabels: {app: api}}\n  - namespaceSelector: {matchLabels: {team: b}}\n    podSelector: {matchLabels: {app: web}}\n  - ipBlock: {cidr: 1.2.3.0/24, except: [1.2.3.4/32]}\n  ports: [{port: http}, {port: 5000, endPort: 5005}]",
    ));
    let ok = allowed(&["default/peers"]);
    let no = denied(&["default/peers"]);
    assert_eq!(at(&eval(&set, API0, WEB0, TCP, 8080), Ingress), ok);
    assert_eq!(at(&eval(&set, API0, WEB0, TCP, 5005), Ingress), ok);
    assert_eq!(at(&eval(&set, API0, WEB0, UDP, 5005), Ingress), no);
    assert_eq!(at(&eval(&set, WEB1, WEB0, TCP, 5001), Ingress), ok);
    assert_eq!(at(&eval(&set, DNS0, WEB0, TCP, 5001), Ingress), no);
    assert_eq!(at(&eval(&set, "1.2.3.5", WEB0, TCP, 5001), Ingress), ok);
    assert_eq!(at(&eval(&set, WORLD, WEB0, TCP, 5001), Ingress), no);
    let set = policies(&knp("open", "default", "podSelector: {}\ningress: [{}]"));
    assert_eq!(
        at(&eval(&set, WORLD, WEB0, ICMP, 8), Ingress),
        allowed(&["default/open"])
    );
    let set = policies(&knp("closed", "default", "podSelector: {}"));
    assert_eq!(
        at(&eval(&set, API0, WEB0, TCP, 80), Ingress),
        denied(&["default/closed"])
    );
}

#[test]
fn local_node_limits_enforcement_points() {
    let set = policies(&cnp(
        "lockdown",
        "default",
        "endpointSelector: {}\ningress:\n- {}",
    ));
    let on_n2 = Options::for_node("n2");
    let t = eval_with(&set, &on_n2, WEB1, WEB0, TCP, 80);
    assert!(t.ingress.is_none(), "web-0 runs on n1");
    assert!(t.egress.is_some());
    let t = eval_with(&set, &Options::for_node("n1"), N1, WEB0, TCP, 80);
    assert_eq!(t.src.identity, reserved::HOST);
    let t = eval_with(&set, &on_n2, N1, WEB1, TCP, 80);
    assert_eq!(t.src.identity, reserved::REMOTE_NODE);
}

#[test]
fn trace_by_labels_and_names() {
    let set = policies(&cnp(
        "api-to-web",
        "default",
        "endpointSelector: {matchLabels: {app: web}}\ningress:\n- fromEndpoints: [{matchLabels: {app: api}}]\n  toPorts: [{ports: [{port: '80', protocol: TCP}]}]",
    ));
    let st = state();
    let opts = Options::default();
    let src = TraceTarget::Labels {
        labels: vec!["app=api".into()],
        namespace: Some("default".into()),
    };
    let dst = TraceTarget::Endpoint("web-0".into());
    let t = trace(&st, &set, &opts, &src, &dst, TCP, 80).unwrap();
    assert_eq!(at(&t, Ingress), allowed(&["default/api-to-web"]));
    assert_eq!(at(&t, Egress), allowed(&[]));
    let t = trace(&st, &set, &opts, &src, &dst, TCP, 81).unwrap();
    assert_eq!(at(&t, Ingress), denied(&["default/api-to-web"]));
    let host = TraceTarget::Labels {
        labels: vec!["reserved:host".into()],
        namespace: None,
    };
    let t = trace(&st, &set, &opts, &host, &dst, TCP, 81).unwrap();
    assert_eq!(t.src.identity, reserved::HOST);
    assert!(t.egress.is_none());
    assert_eq!(at(&t, Ingress), allowed(&[]));
    let by_name = trace(
        &st,
        &set,
        &opts,
        &TraceTarget::Endpoint("default/api-0".into()),
        &dst,
        TCP,
        80,
    )
    .unwrap();
    assert_eq!(at(&by_name, Ingress), allowed(&["default/api-to-web"]));
    assert_eq!(by_name.src.endpoint.as_deref(), Some("default/api-0"));
    let by_ip = trace(
        &st,
        &set,
        &opts,
        &TraceTarget::Ip(WORLD.parse().unwrap()),
        &dst,
        TCP,
        80,
    )
    .unwrap();
    assert_eq!(at(&by_ip, Ingress), denied(&["default/api-to-web"]));
    assert_eq!(
        trace(
            &st,
            &set,
            &opts,
            &TraceTarget::Endpoint("nope".into()),
            &dst,
            TCP,
            80
        )
        .unwrap_err()
        .to_string(),
        "no endpoint `nope` in the state directory"
    );
}

#[test]
fn unsupported_features_are_reported_and_select_nothing() {
    let set = policies(&format!(
        "{}{}{}",
        cnp(
            "extras",
            "default",
            "endpointSelector: {matchLabels: {app: web}}\negress:\n- toServices: [{k8sService: {serviceName: db, namespace: default}}]\n- toFQDNs: [{matchName: example.com}]\n  toPorts: [{ports: [{port: '443', protocol: TCP}], serverNames: [example.com]}]\n- toEntities: [world]\n  authentication: {mode: required}",
        ),
        ccnp(
            "hosts",
            "nodeSelector: {}\ningress:\n- fromEntities: [cluster]"
        ),
        knp(
            "types",
            "default",
            "podSelector: {}\npolicyTypes: [Egress]\ningress:\n- {}"
        ),
    ));
    let notices: Vec<String> = set
        .notices()
        .iter()
        .map(|n| format!("{} {}: {}", n.policy.name, n.location, n.message))
        .collect();
    assert_eq!(
        notices,
        vec![
            "hosts spec.nodeSelector: host policies (`nodeSelector`) are not supported: weir enforces policy on pod endpoints only, so this rule selects nothing",
            "extras spec.egress[0].toServices: `toServices` is not supported yet: it selects nothing, so this rule allows nothing",
            "extras spec.egress[1].toFQDNs: toFQDNs selects no addresses yet (DNS-based policy is not implemented): this rule allows nothing",
            "extras spec.egress[1].toPorts[0].serverNames: `serverNames` (TLS SNI) is not enforced yet: the ports are allowed at L4",
            "extras spec.egress[2].authentication: authentication mode `required` is not enforced yet: the rule allows its traffic without mutual authentication",
            "types spec.ingress: these ingress rules have no effect: `policyTypes` does not list `Ingress`",
        ]
    );
    // toFQDNs with toPorts does not become an L4-only rule: HTTPS to the world is denied.
    assert_eq!(
        at(&eval(&set, WEB0, WORLD, TCP, 443), Egress),
        allowed(&["default/extras"])
    );
    assert_eq!(
        at(&eval(&set, WEB0, API0, TCP, 443), Egress),
        denied(&["default/extras", "default/types"])
    );
    // The host policy selects no endpoint.
    assert!(!eval(&set, WORLD, WEB1, TCP, 1).ingress.unwrap().enforced);
}

#[test]
fn a_namespaced_selector_cannot_name_another_namespace() {
    let text = cnp(
        "x",
        "default",
        "endpointSelector: {matchLabels: {k8s:io.kubernetes.pod.namespace: prod}}",
    );
    assert_eq!(
        PolicySet::parse_str("p.yaml", &text)
            .unwrap_err()
            .to_string(),
        "p.yaml:5:3: document 1 (CiliumNetworkPolicy default/x), spec.endpointSelector.matchLabels: the endpointSelector of a CiliumNetworkPolicy in namespace `default` selects only endpoints of `default`, but it names namespace `prod`: move the policy to namespace `prod` or use a CiliumClusterwideNetworkPolicy"
    );
}
