//! HTTP rules through the compiler and the evaluator: merging (Cilium's union), shared ids,
//! limits, and decisions for requests.

mod common;

use common::*;
use weir_policy::compiled::{Direction, PolicyEntry};
use weir_policy::http::HttpRequest;
use weir_policy::{CompileError, CompiledPolicy, Evaluator, Options, compile};

fn options(allow_localhost: bool) -> Options {
    Options {
        local_node: "n1".into(),
        allow_localhost,
        ..Options::default()
    }
}

fn compiled(yaml: &str, options: &Options) -> CompiledPolicy {
    compile(&state(), &policies(yaml), options).unwrap_or_else(|e| panic!("{e}"))
}

/// (identity, port, HTTP rules as `policy location`) of the TCP entries of `ep` at ingress.
fn http_entries(c: &CompiledPolicy, ep: &str) -> Vec<(u32, u16, Vec<String>)> {
    let e = c.endpoints.iter().find(|e| e.name == ep).unwrap();
    e.ingress
        .entries
        .iter()
        .filter(|x: &&PolicyEntry| x.protocol == TCP && x.port_prefix_len == 16)
        .map(|x| {
            let rules = match x.l7_rules {
                0 => Vec::new(),
                id => c.http_rule_sets[&id]
                    .rules
                    .iter()
                    .map(|r| format!("{} {}", r.policy.name, r.location))
                    .collect(),
            };
            (x.identity, x.port, rules)
        })
        .collect()
}

fn identity(c: &CompiledPolicy, ep: &str) -> u32 {
    c.endpoints.iter().find(|e| e.name == ep).unwrap().identity
}

fn cnp(name: &str, selector: &str, ingress: &str) -> String {
    format!(
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {{name: {name}, namespace: default}}\n\
         spec:\n  endpointSelector: {{matchLabels: {{app: {selector}}}}}\n  ingress:\n{ingress}---\n"
    )
}

const FROM_WEB: &str = "    - fromEndpoints: [{matchLabels: {app: web}}]\n";
const ANY_PEER: &str = "    - toPorts:\n";
const PORT80: &str = "        - ports: [{port: '80', protocol: TCP}]\n";

fn http(rules: &str) -> String {
    format!("{PORT80}          rules: {{http: [{rules}]}}\n")
}

#[test]
fn allow_rules_merge_their_http_rules() {
    let yaml = [
        cnp(
            "a",
            "api",
            &format!(
                "{FROM_WEB}      toPorts:\n{}",
                http("{method: GET, path: /a}")
            ),
        ),
        cnp(
            "b",
            "api",
            &format!("{ANY_PEER}{}", http("{method: POST}, {path: /b}")),
        ),
    ]
    .concat();
    let c = compiled(&yaml, &options(false));
    let web = identity(&c, "web-0");
    let b = vec![
        "b spec.ingress[0].toPorts[0].rules.http[0]".to_string(),
        "b spec.ingress[0].toPorts[0].rules.http[1]".to_string(),
    ];
    let mut ab = vec!["a spec.ingress[0].toPorts[0].rules.http[0]".to_string()];
    ab.extend(b.clone());
    assert_eq!(
        http_entries(&c, "api-0"),
        vec![(0, 80, b.clone()), (web, 80, ab)]
    );
    assert!(c.notices.is_empty(), "{:?}", c.notices);
    assert_eq!(c.http_rule_sets.len(), 2);
    assert!(c.http_tables.keys().eq(c.http_rule_sets.keys()));

    // One plain allow for the same key lifts the restriction (Cilium's union).
    let plain = [
        yaml.clone(),
        cnp("c", "api", &format!("{FROM_WEB}      toPorts:\n{PORT80}")),
    ]
    .concat();
    let c = compiled(&plain, &options(false));
    assert_eq!(
        http_entries(&c, "api-0"),
        vec![(0, 80, b.clone()), (web, 80, vec![])]
    );
    // So does an L3-only allow, and a toPorts entry without rules in the same rule.
    let l3 = [yaml.clone(), cnp("c", "api", FROM_WEB)].concat();
    let c = compiled(&l3, &options(false));
    assert!(http_entries(&c, "api-0").contains(&(web, 80, vec![])));
    let same_rule = cnp(
        "d",
        "api",
        &format!("{ANY_PEER}{}{PORT80}", http("{path: /d}")),
    );
    let c = compiled(&same_rule, &options(false));
    assert_eq!(http_entries(&c, "api-0"), vec![(0, 80, vec![])]);
}

#[test]
fn kafka_rules_stay_l4_with_a_notice() {
    let yaml = cnp(
        "k",
        "api",
        &format!("{ANY_PEER}{PORT80}          rules: {{kafka: [{{role: produce, topic: t}}]}}\n"),
    );
    let c = compiled(&yaml, &options(false));
    assert_eq!(http_entries(&c, "api-0"), vec![(0, 80, vec![])]);
    assert_eq!(c.notices.len(), 1);
    assert!(
        c.notices[0]
            .message
            .contains("Kafka rules on port 80/TCP are not enforced yet")
    );
}

#[test]
fn equal_sets_share_an_id_and_named_ports_resolve() {
    let rules = "{method: GET}";
    let yaml = [
        cnp("w", "web", &format!("{ANY_PEER}{}", http(rules))),
        cnp("x", "api", &format!("{ANY_PEER}{}", http(rules))),
        cnp(
            "n",
            "web",
            &format!(
                "{ANY_PEER}        - ports: [{{port: http, protocol: TCP}}]\n          rules: {{http: [{rules}]}}\n"
            ),
        ),
    ]
    .concat();
    let c = compiled(&yaml, &options(false));
    let id_of = |ep: &str, port: u16| {
        let e = c.endpoints.iter().find(|e| e.name == ep).unwrap();
        e.ingress
            .entries
            .iter()
            .find(|x| x.port == port && x.protocol == TCP)
            .unwrap()
            .l7_rules
    };
    // Sets hold their policies' references, so w's and x's sets differ; n's named port
    // `http` is 8080 on web-0.
    assert_ne!(id_of("web-0", 80), id_of("api-0", 80));
    assert_ne!(id_of("web-0", 8080), 0);
    let same = [
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: both, namespace: default}\n\
         spec:\n  endpointSelector: {}\n  ingress:\n"
            .to_string(),
        format!("{ANY_PEER}{}", http(rules)),
    ]
    .concat();
    let c = compiled(&same, &options(false));
    let ids: Vec<u32> = c
        .endpoints
        .iter()
        .flat_map(|e| e.ingress.entries.iter().map(|x| x.l7_rules))
        .collect();
    assert_eq!(ids, vec![1, 1]);
    assert_eq!(
        c.http_rule_sets.keys().copied().collect::<Vec<_>>(),
        vec![1]
    );
}

#[test]
fn allow_localhost_is_not_restricted() {
    let yaml = cnp("h", "api", &format!("{ANY_PEER}{}", http("{method: GET}")));
    let c = compiled(&yaml, &options(true));
    let entries = http_entries(&c, "api-0");
    assert!(entries.contains(&(1, 80, vec![])), "{entries:?}");
    assert!(entries.contains(&(
        0,
        80,
        vec!["h spec.ingress[0].toPorts[0].rules.http[0]".into()]
    )));
}

#[test]
fn sets_that_do_not_fit_fail_the_compilation() {
    let rules: Vec<String> = (0..49).map(|i| format!("{{path: /p{i}}}")).collect();
    let yaml = cnp(
        "big",
        "api",
        &format!("{ANY_PEER}{}", http(&rules.join(", "))),
    );
    let err = compile(&state(), &policies(&yaml), &options(false)).unwrap_err();
    assert!(matches!(err, CompileError::Http(_)));
    assert_eq!(
        err.to_string(),
        "HTTP rules do not fit the datapath: CiliumNetworkPolicy default/big \
         spec.ingress[0].toPorts[0].rules.http[48]: the HTTP rules of this port number 49; the \
         datapath allows 48 per port"
    );
}

fn get(path: &str) -> HttpRequest {
    HttpRequest {
        method: b"GET".to_vec(),
        target: path.as_bytes().to_vec(),
        version: 1,
        headers: vec![(b"Host".to_vec(), b"api".to_vec())],
    }
}

#[test]
fn requests_are_decided_at_every_enforcement_point() {
    let yaml = [
        cnp(
            "in",
            "api",
            &format!("{FROM_WEB}      toPorts:\n{}", http("{path: /a}")),
        ),
        "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: out, namespace: default}\n\
         spec:\n  endpointSelector: {matchLabels: {app: web}}\n  egress:\n    - toPorts:\n"
            .to_string(),
        http("{path: /a.*}"),
    ]
    .concat();
    let set = policies(&yaml);
    let st = state();
    let ev = Evaluator::new(&st, &set, &Options::default());
    let p = packet(WEB0, API0, TCP, 80);

    let d = ev.decide_http(&p, &get("/a"));
    assert!(d.allowed);
    assert_eq!(d.l4.direction, Direction::Ingress);
    let (policy, location) = d.rule.unwrap();
    assert_eq!(
        (policy.name.as_str(), location.as_str()),
        ("in", "spec.ingress[0].toPorts[0].rules.http[0]")
    );

    // The egress rule allows /ab, the ingress rule does not.
    let d = ev.decide_http(&p, &get("/ab"));
    assert!(!d.allowed);
    assert_eq!(d.l4.direction, Direction::Ingress);
    assert_eq!(d.rule, None);
    // Neither allows /b: the egress point decides first.
    let d = ev.decide_http(&p, &get("/b"));
    assert!(!d.allowed);
    assert_eq!(d.l4.direction, Direction::Egress);
    // Another port: denied at L4 by both directions' default deny; egress first.
    let d = ev.decide_http(&packet(WEB0, API0, TCP, 81), &get("/a"));
    assert!(!d.allowed && d.http_rules.is_none());
    assert_eq!(d.l4.direction, Direction::Egress);
    // Not between endpoints: nothing enforces.
    let d = ev.decide_http(&packet(WORLD, N1, TCP, 80), &get("/zzz"));
    assert!(d.allowed && d.l4.endpoint.is_empty());
}

#[test]
fn compiled_http_rule_sets_serialise_and_tables_rebuild() {
    let yaml = cnp(
        "s",
        "api",
        &format!("{ANY_PEER}{}", http("{method: GET, path: '/a.*'}")),
    );
    let c = compiled(&yaml, &options(false));
    let json = serde_json::to_string(&c).unwrap();
    let mut back: CompiledPolicy = serde_json::from_str(&json).unwrap();
    assert_eq!(back.http_rule_sets, c.http_rule_sets);
    assert!(back.http_tables.is_empty());
    back.rebuild_http_tables().unwrap();
    assert_eq!(back, c);
}

#[test]
fn flow_headers_that_do_not_fit_get_a_notice() {
    let rules = cnp(
        "api",
        "api",
        &format!("{FROM_WEB}      toPorts:\n{}", http("{path: /healthz}")),
    );
    let mut opts = options(false);
    opts.http_flow_headers = vec!["content-type".into()];
    let c = compiled(&rules, &opts);
    assert!(c.http_tables.values().all(|t| t.flow_headers));
    assert!(c.notices.is_empty(), "{:?}", c.notices);
    assert_eq!(c.http_flow_headers, ["content-type"]);

    opts.http_flow_headers = (0..15u8)
        .map(|i| {
            (0..40u8)
                .map(|j| char::from(b'a' + (i * 7 + j * 3) % 26))
                .collect()
        })
        .collect();
    let c = compiled(&rules, &opts);
    assert!(c.http_tables.values().all(|t| !t.flow_headers));
    assert_eq!(c.notices.len(), 1, "{:?}", c.notices);
    let n = &c.notices[0];
    assert_eq!(n.policy.name, "api");
    assert_eq!(n.location, "spec.ingress[0].toPorts[0].rules.http[0]");
    assert!(
        n.message.contains("do not fit this port's header-name DFA"),
        "{}",
        n.message
    );
}

#[test]
fn grpc_rules_mixed_with_other_http_rules_get_a_notice() {
    let grpc = "{method: POST, path: /com.example.catalog.ProductService/GetProduct}";
    let alone = cnp(
        "catalog",
        "api",
        &format!("{FROM_WEB}      toPorts:\n{}", http(grpc)),
    );
    let c = compiled(&alone, &options(false));
    assert!(c.http_rule_sets.values().all(|s| s.is_grpc()));
    assert!(c.notices.is_empty(), "{:?}", c.notices);

    let mixed = format!(
        "{alone}{}",
        cnp(
            "health",
            "api",
            &format!("{FROM_WEB}      toPorts:\n{}", http("{path: /healthz}"))
        )
    );
    let c = compiled(&mixed, &options(false));
    assert!(c.http_rule_sets.values().all(|s| !s.is_grpc()));
    assert_eq!(c.notices.len(), 1, "{:?}", c.notices);
    let n = &c.notices[0];
    assert_eq!(n.policy.name, "catalog");
    assert_eq!(n.location, "spec.ingress[0].toPorts[0].rules.http[0]");
    assert!(
        n.message.contains("HTTP/2) connections are refused"),
        "{}",
        n.message
    );
}
