//! The shape of the compiler's output (the datapath contract in `compiled`).

mod common;

use common::*;
use weir_policy::compiled::{MatchType, PolicyEntry, reserved};
use weir_policy::{CompiledPolicy, Options, compile};

fn compiled(yaml: &str, options: &Options) -> CompiledPolicy {
    compile(&state(), &policies(yaml), options).unwrap()
}

/// (identity, protocol, port, prefix length, deny, match type, policies)
type Row = (u32, u8, u16, u8, bool, MatchType, Vec<String>);

fn entries(c: &CompiledPolicy, ep: &str, ingress: bool) -> Vec<Row> {
    let e = c.endpoints.iter().find(|e| e.name == ep).unwrap();
    let dp = if ingress { &e.ingress } else { &e.egress };
    dp.entries
        .iter()
        .map(|x: &PolicyEntry| {
            let refs = c.rule_sets.get(&x.rule_set).cloned().unwrap_or_default();
            (
                x.identity,
                x.protocol,
                x.port,
                x.port_prefix_len,
                x.deny,
                x.match_type,
                refs.iter().map(name).collect(),
            )
        })
        .collect()
}

const WEB_PORTS: &str = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: web, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - toPorts: [{ports: [{port: '53'}, {port: '8000', endPort: 8003, protocol: TCP}]}]
    - icmps: [{fields: [{type: 8}]}]
";

#[test]
fn ports_protocols_and_icmp_become_prefix_entries() {
    let c = compiled(
        WEB_PORTS,
        &Options {
            local_node: "n1".into(),
            allow_localhost: false,
            http_flow_headers: Vec::new(),
        },
    );
    let web = vec!["default/web".to_string()];
    assert_eq!(
        entries(&c, "web-0", true),
        vec![
            (0, 1, 8, 16, false, MatchType::L4Only, web.clone()),
            (0, 6, 53, 16, false, MatchType::L4Only, web.clone()),
            (0, 6, 8000, 14, false, MatchType::L4Only, web.clone()),
            (0, 17, 53, 16, false, MatchType::L4Only, web.clone()),
            (0, 132, 53, 16, false, MatchType::L4Only, web.clone()),
        ]
    );
    let ep = c.endpoints.iter().find(|e| e.name == "web-0").unwrap();
    assert!(ep.ingress.enforced);
    assert_eq!(c.rule_sets[&ep.ingress.selecting], vec![ep_ref("web")]);
    assert!(!ep.egress.enforced);
    assert_eq!(ep.egress.selecting, 0);
    assert!(ep.egress.entries.is_empty());
    // api-0 is not selected: no entries, not enforced.
    let api = c.endpoints.iter().find(|e| e.name == "api-0").unwrap();
    assert!(!api.ingress.enforced && api.ingress.entries.is_empty());
}

fn ep_ref(n: &str) -> weir_policy::compiled::PolicyRef {
    weir_policy::compiled::PolicyRef {
        kind: "CiliumNetworkPolicy".into(),
        namespace: "default".into(),
        name: n.into(),
    }
}

#[test]
fn allow_localhost_is_a_host_entry_refined_by_rules() {
    let c = compiled(WEB_PORTS, &Options::for_node("n1"));
    let web = vec!["default/web".to_string()];
    let host: Vec<_> = entries(&c, "web-0", true)
        .into_iter()
        .filter(|e| e.0 == reserved::HOST)
        .collect();
    // The host entry covers every key with rule set 0; the wildcard entries below it are copied
    // so that the host identity still reports the allowing policy for those keys.
    assert_eq!(
        host,
        vec![
            (1, 0, 0, 0, false, MatchType::L3Only, vec![]),
            (1, 1, 8, 16, false, MatchType::L3L4, web.clone()),
            (1, 6, 53, 16, false, MatchType::L3L4, web.clone()),
            (1, 6, 8000, 14, false, MatchType::L3L4, web.clone()),
            (1, 17, 53, 16, false, MatchType::L3L4, web.clone()),
            (1, 132, 53, 16, false, MatchType::L3L4, web.clone()),
        ]
    );
    // Egress never gets the host entry.
    assert!(entries(&c, "web-0", false).is_empty());
}

#[test]
fn deny_shadows_narrower_and_wider_allows() {
    let yaml = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow, namespace: default}
spec:
  endpointSelector: {matchLabels: {app: web}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: api}}]
      toPorts: [{ports: [{protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: deny}
spec:
  endpointSelector: {}
  ingressDeny:
    - toPorts: [{ports: [{port: '80', protocol: TCP}]}]
";
    let c = compiled(
        yaml,
        &Options {
            local_node: "n1".into(),
            allow_localhost: false,
            http_flow_headers: Vec::new(),
        },
    );
    let api_id = c
        .endpoints
        .iter()
        .find(|e| e.name == "api-0")
        .unwrap()
        .identity;
    assert_eq!(
        entries(&c, "web-0", true),
        vec![
            (
                0,
                6,
                80,
                16,
                true,
                MatchType::L4Only,
                vec!["deny".to_string()]
            ),
            (
                api_id,
                6,
                0,
                0,
                false,
                MatchType::L3Proto,
                vec!["default/allow".to_string()]
            ),
            (
                api_id,
                6,
                80,
                16,
                true,
                MatchType::L3L4,
                vec!["deny".to_string()]
            ),
        ]
    );
}

#[test]
fn ipcache_identities_and_rule_sets_are_complete_and_sorted() {
    let yaml = "apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: out, namespace: default}
spec:
  endpointSelector: {}
  egress:
    - toCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
    - toCIDR: [10.0.5.0/24]
";
    let c = compiled(yaml, &Options::for_node("n1"));
    let ipc: Vec<(String, u32)> = c
        .ipcache
        .iter()
        .map(|e| (e.prefix.to_string(), e.identity))
        .collect();
    let find = |p: &str| ipc.iter().find(|(q, _)| q == p).map(|(_, id)| *id);
    assert_eq!(find("192.168.1.1/32"), Some(reserved::HOST));
    assert_eq!(find("192.168.1.2/32"), Some(reserved::REMOTE_NODE));
    assert_eq!(find("10.0.0.0/16"), Some(reserved::UNMANAGED));
    assert_eq!(find("0.0.0.0/0"), Some(reserved::WORLD));
    assert_eq!(find("::/0"), Some(reserved::WORLD));
    assert_eq!(find("10.0.5.0/24"), None, "inside the pod CIDR");
    let cidr = find("203.0.113.0/24").unwrap();
    let except = find("203.0.113.128/25").unwrap();
    assert_eq!(cidr & reserved::LOCAL_SCOPE, reserved::LOCAL_SCOPE);
    assert_ne!(cidr, except);
    assert_eq!(
        c.identities[&cidr],
        vec!["cidr:203.0.113.0/24", "reserved:world"]
    );
    assert_eq!(c.identities[&reserved::WORLD], vec!["reserved:world"]);
    let web = c.endpoints.iter().find(|e| e.name == "web-0").unwrap();
    assert!(c.identities[&web.identity].contains(&"k8s:app=web".to_string()));
    for e in &c.ipcache {
        assert!(c.identities.contains_key(&e.identity), "{e:?}");
    }
    let mut sorted = c.ipcache.clone();
    sorted.sort();
    assert_eq!(sorted, c.ipcache);
    // Only n1's endpoints, sorted by namespace and name.
    let names: Vec<String> = c
        .endpoints
        .iter()
        .map(|e| format!("{}/{}", e.namespace, e.name))
        .collect();
    assert_eq!(names, vec!["default/api-0", "default/web-0"]);
    for ep in &c.endpoints {
        for e in ep.ingress.entries.iter().chain(&ep.egress.entries) {
            assert!(e.rule_set == 0 || c.rule_sets.contains_key(&e.rule_set));
        }
    }
    assert_eq!(
        c.notices
            .iter()
            .map(|n| format!("{} {}: {}", n.policy.name, n.location, n.message))
            .collect::<Vec<_>>(),
        vec![
            "out spec.egress[1]: `10.0.5.0/24` selects no address: it lies inside the pod CIDR 10.0.0.0/16, whose addresses keep the identity `unmanaged`"
        ]
    );
    // Deterministic.
    assert_eq!(c, compiled(yaml, &Options::for_node("n1")));
}

#[test]
fn unknown_node_is_an_error() {
    let err = compile(&state(), &policies(WEB_PORTS), &Options::for_node("n9")).unwrap_err();
    assert_eq!(err.to_string(), "node `n9` is not listed in cluster.yaml");
    let err = compile(&state(), &policies(WEB_PORTS), &Options::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no local node given: the compiler needs the node whose endpoints it compiles"
    );
}
