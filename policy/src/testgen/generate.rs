//! Random clusters, policies (as YAML documents) and packets.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use super::rng::Rng;
use crate::cluster::{ClusterSpec, ClusterState, EndpointSpec, NamedPort, NamespaceSpec, NodeSpec};
use crate::eval::Packet;

pub(crate) const NAMESPACES: [&str; 3] = ["default", "shop", "kube-system"];
const APPS: [&str; 4] = ["web", "api", "db", "dns"];
const TIERS: [&str; 2] = ["front", "back"];
const ENVS: [&str; 2] = ["prod", "dev"];
const TEAMS: [&str; 2] = ["a", "b"];
/// Ports policies and packets are drawn from (packets also use ±1 around them).
const PORTS: [u16; 10] = [53, 80, 443, 1000, 1010, 5000, 8080, 9090, 65535, 1];
const ENTITIES: [&str; 13] = [
    "all",
    "world",
    "world-ipv4",
    "world-ipv6",
    "cluster",
    "host",
    "remote-node",
    "kube-apiserver",
    "init",
    "health",
    "unmanaged",
    "ingress",
    "none",
];
/// Prefixes policies name: outside the cluster, overlapping, inside the pod CIDR, a node.
const CIDRS: [(&str, &[&str]); 9] = [
    ("203.0.113.0/24", &["203.0.113.128/25", "203.0.113.7/32"]),
    ("203.0.113.128/25", &[]),
    ("198.51.100.0/24", &["198.51.100.0/26"]),
    ("0.0.0.0/0", &["203.0.113.0/24"]),
    ("8.8.8.8/32", &[]),
    ("10.200.1.0/24", &[]),
    ("192.168.0.2/32", &[]),
    ("2001:db8::/32", &["2001:db8:1::/48"]),
    ("::/0", &[]),
];
/// Addresses outside the cluster that packets use.
const WORLD: [&str; 10] = [
    "203.0.113.5",
    "203.0.113.7",
    "203.0.113.200",
    "198.51.100.10",
    "198.51.100.100",
    "8.8.8.8",
    "1.2.3.4",
    "2001:db8::5",
    "2001:db8:1::9",
    "2001:db9::1",
];

pub(crate) fn cluster(rng: &mut Rng) -> ClusterState {
    let node_count = rng.range(2, 3);
    let nodes: Vec<NodeSpec> = (1..=node_count)
        .map(|i| NodeSpec {
            name: format!("n{i}"),
            ips: vec![
                format!("192.168.0.{i}").parse().expect("ip"),
                format!("fd00:ffff::{i}").parse().expect("ip"),
            ],
            labels: BTreeMap::new(),
        })
        .collect();
    let namespaces = NAMESPACES
        .iter()
        .map(|ns| {
            let mut labels = BTreeMap::new();
            if rng.chance(70) {
                labels.insert("team".to_string(), rng.pick(&TEAMS).to_string());
            }
            NamespaceSpec {
                name: ns.to_string(),
                labels,
            }
        })
        .collect();
    let count = rng.range(3, 9);
    let mut endpoints = Vec::new();
    for i in 0..count {
        let app = *rng.pick(&APPS);
        let mut labels = BTreeMap::from([("app".to_string(), app.to_string())]);
        if rng.chance(50) {
            labels.insert("tier".into(), rng.pick(&TIERS).to_string());
        }
        if rng.chance(40) {
            labels.insert("env".into(), rng.pick(&ENVS).to_string());
        }
        let mut ips: Vec<IpAddr> =
            vec![format!("10.200.{}.{}", i / 4, 10 + i).parse().expect("ip")];
        if rng.chance(50) {
            ips.push(format!("fd00:200::{:x}", 0x10 + i).parse().expect("ip"));
        }
        let mut named_ports = BTreeMap::new();
        if rng.chance(60) {
            let port = *rng.pick(&[80u16, 8080, 1000]);
            named_ports.insert(
                "http".to_string(),
                NamedPort {
                    port,
                    protocol: "TCP".into(),
                },
            );
        }
        if rng.chance(30) {
            named_ports.insert(
                "dns".to_string(),
                NamedPort {
                    port: 53,
                    protocol: (*rng.pick(&["UDP", "TCP"])).into(),
                },
            );
        }
        endpoints.push(EndpointSpec {
            name: format!("{app}-{i}"),
            namespace: rng.pick(&NAMESPACES).to_string(),
            node: format!("n{}", rng.range(1, node_count)),
            labels,
            service_account: rng.chance(30).then(|| app.to_string()),
            ips,
            interface: format!("lxc{i}"),
            netns: None,
            named_ports,
            workload: None,
        });
    }
    ClusterState {
        cluster: ClusterSpec {
            name: "lab".into(),
            pod_cidrs: vec![
                "10.200.0.0/16".parse().expect("net"),
                "fd00:200::/64".parse().expect("net"),
            ],
            nodes,
            namespaces,
        },
        endpoints,
    }
}

fn obj(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert(k.to_string(), v);
    }
    Value::Object(m)
}

/// A Cilium-style selector (keys may carry a source).
fn selector(rng: &mut Rng, peer: bool, cluster_wide: bool) -> Value {
    let mut labels = Map::new();
    let mut exprs = Vec::new();
    match rng.below(10) {
        0 => {}
        1 if peer => {
            labels.insert("reserved:host".into(), json!(""));
        }
        2 if peer => {
            labels.insert(
                "k8s:io.kubernetes.pod.namespace".into(),
                json!(rng.pick(&NAMESPACES)),
            );
        }
        3 if peer && !cluster_wide => {
            labels.insert(
                "k8s:io.cilium.k8s.namespace.labels.team".into(),
                json!(rng.pick(&TEAMS)),
            );
        }
        _ => {
            let key = *rng.pick(&["app", "k8s:app", "any:app"]);
            labels.insert(key.into(), json!(rng.pick(&APPS)));
        }
    }
    if rng.chance(30) {
        let key = *rng.pick(&["tier", "env", "app"]);
        let op = *rng.pick(&["In", "NotIn", "Exists", "DoesNotExist"]);
        let values: Vec<&str> = match key {
            "tier" => rng.subset(&TIERS, 60),
            "env" => rng.subset(&ENVS, 60),
            _ => rng.subset(&APPS, 40),
        };
        let mut e = vec![("key", json!(key)), ("operator", json!(op))];
        if op == "In" || op == "NotIn" {
            let values = if values.is_empty() {
                vec![TIERS[0]]
            } else {
                values
            };
            e.push(("values", json!(values)));
        }
        exprs.push(obj(e));
    }
    let mut sel = Vec::new();
    if !labels.is_empty() {
        sel.push(("matchLabels", Value::Object(labels)));
    }
    if !exprs.is_empty() {
        sel.push(("matchExpressions", Value::Array(exprs)));
    }
    obj(sel)
}

fn port_entry(rng: &mut Rng) -> Value {
    let mut e = Vec::new();
    match rng.below(10) {
        0 => {}
        1 => e.push(("port", json!("0"))),
        2 => e.push(("port", json!(*rng.pick(&["http", "dns"])))),
        3 => e.push(("port", json!(*rng.pick(&PORTS)))),
        4 | 5 => {
            let first = *rng.pick(&[1000u16, 5000, 79, 1]);
            e.push(("port", json!(first.to_string())));
            e.push(("endPort", json!(first + *rng.pick(&[0u16, 1, 10, 100]))));
        }
        _ => e.push(("port", json!(rng.pick(&PORTS).to_string()))),
    }
    if rng.chance(70) {
        e.push(("protocol", json!(*rng.pick(&["TCP", "UDP", "SCTP", "ANY"]))));
    }
    obj(e)
}

fn cidr_set(rng: &mut Rng) -> Value {
    let (cidr, excepts) = *rng.pick(&CIDRS);
    let except: Vec<&str> = rng.subset(excepts, 60);
    if except.is_empty() {
        obj(vec![("cidr", json!(cidr))])
    } else {
        obj(vec![("cidr", json!(cidr)), ("except", json!(except))])
    }
}

/// One CNP/CCNP rule (`dir` is `from` or `to`).
fn cilium_rule(rng: &mut Rng, dir: &str, deny: bool, cluster_wide: bool) -> Value {
    let mut r: Vec<(String, Value)> = Vec::new();
    if rng.chance(8) {
        return json!({});
    }
    let l3 = rng.below(10);
    if (3..7).contains(&l3) {
        let n = rng.range(1, 2);
        let sels: Vec<Value> = (0..n).map(|_| selector(rng, true, cluster_wide)).collect();
        r.push((format!("{dir}Endpoints"), Value::Array(sels)));
    }
    if l3 == 7 || (l3 >= 3 && rng.chance(15)) {
        let n = rng.range(1, 2);
        let ents: Vec<&str> = (0..n).map(|_| *rng.pick(&ENTITIES)).collect();
        r.push((format!("{dir}Entities"), json!(ents)));
    }
    if l3 == 8 {
        let (cidr, _) = *rng.pick(&CIDRS);
        r.push((format!("{dir}CIDR"), json!([cidr])));
    }
    if l3 == 9 || (l3 >= 3 && rng.chance(10)) {
        let set = cidr_set(rng);
        r.push((format!("{dir}CIDRSet"), json!([set])));
    }
    if dir == "to" && !deny && rng.chance(4) {
        r.push(("toFQDNs".into(), json!([{"matchPattern": "*.example.com"}])));
    }
    match rng.below(10) {
        0..=3 => {}
        4 => {
            let family = *rng.pick(&["IPv4", "IPv6"]);
            let t = if family == "IPv4" {
                *rng.pick(&["8", "EchoRequest", "0"])
            } else {
                *rng.pick(&["128", "EchoRequest", "129"])
            };
            let field = if rng.chance(50) && family == "IPv4" {
                json!({"type": t})
            } else {
                json!({"type": t, "family": family})
            };
            r.push(("icmps".into(), json!([{"fields": [field]}])));
        }
        5 if !deny && rng.chance(60) => {
            // An HTTP port: exact TCP ports, sometimes next to a plain entry for the same port.
            let port = *rng.pick(&["80", "8080", "http"]);
            let n = rng.range(1, 3);
            let rules: Vec<Value> = (0..n).map(|_| rng.pick(&HTTP_RULES)()).collect();
            let mut entries = vec![json!({
                "ports": [{"port": port, "protocol": "TCP"}],
                "rules": {"http": rules},
            })];
            if rng.chance(15) {
                entries.push(json!({"ports": [{"port": port, "protocol": "TCP"}]}));
            }
            r.push(("toPorts".into(), Value::Array(entries)));
        }
        _ => {
            let n = rng.range(1, 2);
            let ports: Vec<Value> = (0..n).map(|_| port_entry(rng)).collect();
            let mut pr = vec![("ports", Value::Array(ports.clone()))];
            let l7_ok = !deny
                && ports.iter().all(|p| {
                    p.get("protocol").and_then(Value::as_str) == Some("TCP")
                        && p.get("endPort").is_none()
                        && p.get("port")
                            .and_then(Value::as_str)
                            .is_some_and(|s| s != "0")
                });
            if l7_ok && rng.chance(30) {
                let n = rng.range(1, 3);
                let rules: Vec<Value> = (0..n).map(|_| rng.pick(&HTTP_RULES)()).collect();
                pr.push(("rules", json!({ "http": rules })));
            } else if l7_ok && rng.chance(5) {
                pr.push((
                    "rules",
                    json!({"kafka": [{"role": "produce", "topic": "t"}]}),
                ));
            }
            r.push(("toPorts".into(), json!([obj(pr)])));
        }
    }
    let mut m = Map::new();
    for (k, v) in r {
        m.insert(k, v);
    }
    Value::Object(m)
}

/// HTTP rules policies use.
const HTTP_RULES: [fn() -> Value; 7] = [
    || json!({"method": "GET", "path": "/api/.*"}),
    || json!({"method": "POST", "path": "/api/v1/orders", "headers": ["Content-Type: application/json"]}),
    || json!({"path": "/public"}),
    || json!({"host": "(.*\\.)?example\\.com"}),
    || json!({"headerMatches": [{"name": "X-Request-Source", "value": "frontend-app"}]}),
    || json!({"method": "GET", "headerMatches": [{"name": "X-Audit", "mismatch": "LOG"}]}),
    || json!({}),
];

fn cilium_policy(rng: &mut Rng, index: usize, cluster_wide: bool) -> Value {
    let mut spec = Map::new();
    spec.insert(
        "endpointSelector".into(),
        selector(rng, false, cluster_wide),
    );
    for (field, dir, deny) in [
        ("ingress", "from", false),
        ("ingressDeny", "from", true),
        ("egress", "to", false),
        ("egressDeny", "to", true),
    ] {
        let p = if deny { 25 } else { 55 };
        if rng.chance(p) {
            let n = rng.range(1, 3);
            let rules: Vec<Value> = (0..n)
                .map(|_| cilium_rule(rng, dir, deny, cluster_wide))
                .collect();
            spec.insert(field.into(), Value::Array(rules));
        }
    }
    if rng.chance(15) {
        let mut dd = Map::new();
        if rng.chance(60) {
            dd.insert("ingress".into(), json!(rng.chance(30)));
        }
        if rng.chance(60) {
            dd.insert("egress".into(), json!(rng.chance(30)));
        }
        spec.insert("enableDefaultDeny".into(), Value::Object(dd));
    }
    let (kind, metadata) = if cluster_wide {
        (
            "CiliumClusterwideNetworkPolicy",
            json!({"name": format!("ccnp-{index}")}),
        )
    } else {
        let ns = *rng.pick(&NAMESPACES);
        (
            "CiliumNetworkPolicy",
            json!({"name": format!("cnp-{index}"), "namespace": ns}),
        )
    };
    json!({"apiVersion": "cilium.io/v2", "kind": kind, "metadata": metadata, "spec": Value::Object(spec)})
}

fn knp_selector(rng: &mut Rng, keys: &[&str]) -> Value {
    if rng.chance(30) {
        return json!({});
    }
    let key = *rng.pick(keys);
    let value = match key {
        "team" => *rng.pick(&TEAMS),
        "kubernetes.io/metadata.name" => *rng.pick(&NAMESPACES),
        "tier" => *rng.pick(&TIERS),
        _ => *rng.pick(&APPS),
    };
    if rng.chance(25) {
        json!({"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]})
    } else {
        json!({"matchLabels": {key: value}})
    }
}

fn knp_rule(rng: &mut Rng, peer_field: &str) -> Value {
    let mut r = Map::new();
    if rng.chance(75) {
        let n = rng.range(1, 2);
        let mut peers = Vec::new();
        for _ in 0..n {
            peers.push(match rng.below(4) {
                0 => json!({"podSelector": knp_selector(rng, &["app", "tier"])}),
                1 => json!({"namespaceSelector": knp_selector(rng, &["team", "kubernetes.io/metadata.name"])}),
                2 => json!({
                    "podSelector": knp_selector(rng, &["app", "tier"]),
                    "namespaceSelector": knp_selector(rng, &["team", "kubernetes.io/metadata.name"]),
                }),
                _ => {
                    let (cidr, excepts) = *rng.pick(&CIDRS);
                    let except = rng.subset(excepts, 50);
                    if except.is_empty() {
                        json!({"ipBlock": {"cidr": cidr}})
                    } else {
                        json!({"ipBlock": {"cidr": cidr, "except": except}})
                    }
                }
            });
        }
        r.insert(peer_field.into(), Value::Array(peers));
    }
    if rng.chance(60) {
        let n = rng.range(1, 2);
        let mut ports = Vec::new();
        for _ in 0..n {
            let mut p = Map::new();
            if rng.chance(60) {
                p.insert("protocol".into(), json!(*rng.pick(&["TCP", "UDP", "SCTP"])));
            }
            match rng.below(5) {
                0 => {}
                1 => {
                    p.insert("port".into(), json!(*rng.pick(&["http", "dns"])));
                }
                2 => {
                    let first = *rng.pick(&[1000u16, 5000, 79]);
                    p.insert("port".into(), json!(first));
                    p.insert("endPort".into(), json!(first + *rng.pick(&[0u16, 10, 100])));
                }
                _ => {
                    p.insert("port".into(), json!(*rng.pick(&PORTS)));
                }
            }
            ports.push(Value::Object(p));
        }
        r.insert("ports".into(), Value::Array(ports));
    }
    Value::Object(r)
}

fn network_policy(rng: &mut Rng, index: usize) -> Value {
    let mut spec = Map::new();
    spec.insert("podSelector".into(), knp_selector(rng, &["app", "tier"]));
    if rng.chance(70) {
        let n = rng.range(0, 2);
        let rules: Vec<Value> = (0..n).map(|_| knp_rule(rng, "from")).collect();
        spec.insert("ingress".into(), Value::Array(rules));
    }
    if rng.chance(50) {
        let n = rng.range(0, 2);
        let rules: Vec<Value> = (0..n).map(|_| knp_rule(rng, "to")).collect();
        spec.insert("egress".into(), Value::Array(rules));
    }
    if rng.chance(40) {
        let types: Vec<&str> = rng.subset(&["Ingress", "Egress"], 60);
        spec.insert("policyTypes".into(), json!(types));
    }
    let ns = *rng.pick(&NAMESPACES);
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": format!("knp-{index}"), "namespace": ns},
        "spec": Value::Object(spec),
    })
}

/// Policy documents as YAML texts.
pub(crate) fn policies(rng: &mut Rng) -> Vec<String> {
    let n = rng.range(1, 6);
    (0..n)
        .map(|i| {
            let doc = match rng.below(10) {
                0..=4 => cilium_policy(rng, i as usize, false),
                5 | 6 => cilium_policy(rng, i as usize, true),
                _ => network_policy(rng, i as usize),
            };
            serde_yaml::to_string(&doc).expect("YAML from JSON")
        })
        .collect()
}

/// Packets biased towards endpoints of `local_node` and towards interesting addresses/ports.
pub(crate) fn packets(
    rng: &mut Rng,
    state: &ClusterState,
    local_node: &str,
    count: usize,
) -> Vec<Packet> {
    let mut pool: BTreeSet<IpAddr> = BTreeSet::new();
    for ep in &state.endpoints {
        pool.extend(ep.ips.iter().copied());
    }
    for n in &state.cluster.nodes {
        pool.extend(n.ips.iter().copied());
    }
    pool.insert("10.200.250.1".parse().expect("ip"));
    pool.insert("10.200.1.77".parse().expect("ip"));
    pool.insert("fd00:200::ffff".parse().expect("ip"));
    for w in WORLD {
        pool.insert(w.parse().expect("ip"));
    }
    for (cidr, excepts) in CIDRS {
        for c in std::iter::once(cidr).chain(excepts.iter().copied()) {
            let net: IpNet = c.parse().expect("net");
            pool.insert(net.network());
            pool.insert(net.broadcast());
        }
    }
    let pool: Vec<IpAddr> = pool.into_iter().collect();
    let local: Vec<IpAddr> = state
        .endpoints
        .iter()
        .filter(|e| e.node == local_node)
        .flat_map(|e| e.ips.iter().copied())
        .collect();
    let mut out = Vec::new();
    let mut attempts = 0;
    while out.len() < count && attempts < count * 20 {
        attempts += 1;
        let a = if !local.is_empty() && rng.chance(80) {
            *rng.pick(&local)
        } else {
            *rng.pick(&pool)
        };
        let same_family: Vec<IpAddr> = pool
            .iter()
            .copied()
            .filter(|b| b.is_ipv4() == a.is_ipv4() && *b != a)
            .collect();
        if same_family.is_empty() {
            continue;
        }
        let b = *rng.pick(&same_family);
        let (src, dst) = if rng.chance(50) { (a, b) } else { (b, a) };
        let protocol = match rng.below(20) {
            0..=8 => 6,
            9..=13 => 17,
            14 | 15 => 132,
            16..=18 => {
                if src.is_ipv4() {
                    1
                } else {
                    58
                }
            }
            _ => 47,
        };
        let dst_port = if protocol == 1 || protocol == 58 {
            *rng.pick(&[0u16, 8, 128, 129, 3])
        } else {
            match rng.below(10) {
                0 => rng.below(65536) as u16,
                1 => rng.pick(&PORTS).wrapping_add(1),
                2 => rng.pick(&PORTS).wrapping_sub(1),
                3 => *rng.pick(&[1005u16, 1100, 5010, 5100, 5101, 80, 81]),
                _ => *rng.pick(&PORTS),
            }
        };
        out.push(Packet {
            src,
            dst,
            protocol,
            src_port: rng.range(1024, 65535) as u16,
            dst_port,
        });
    }
    out
}
