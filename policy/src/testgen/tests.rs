use std::time::Instant;

use super::*;

/// Random cases per run; `WEIR_TESTGEN_CASES` overrides, `WEIR_TESTGEN_SEED` picks the first seed.
fn cases() -> (u64, u64) {
    let count = std::env::var("WEIR_TESTGEN_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let first = std::env::var("WEIR_TESTGEN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    (first, count)
}

#[test]
fn compiler_matches_evaluator_on_random_cases() {
    let (first, count) = cases();
    let start = Instant::now();
    let mut points = 0;
    let mut denied = 0;
    let (mut max_entries, mut total_entries, mut directions) = (0, 0, 0);
    let mut http_entries = 0;
    for seed in first..first + count {
        let case = random_case(seed);
        let compiled = crate::compile::compile(&case.state, &case.policies, &case.options).unwrap();
        for ep in &compiled.endpoints {
            for dp in [&ep.ingress, &ep.egress] {
                max_entries = max_entries.max(dp.entries.len());
                http_entries += dp.entries.iter().filter(|e| e.l7_rules != 0).count();
                total_entries += dp.entries.len();
                directions += 1;
            }
        }
        match check_case(&case) {
            Ok(n) => points += n,
            Err(m) => panic!("{m}"),
        }
        denied += case
            .expected()
            .iter()
            .filter(|t| t.verdict() == crate::eval::Verdict::Denied)
            .count();
    }
    eprintln!(
        "{count} random cases, {points} enforcement points ({denied} denied packets) in {:.1?}; \
         entries per endpoint and direction: max {max_entries}, mean {:.1}; \
         {http_entries} entries with HTTP rules",
        start.elapsed(),
        total_entries as f64 / directions.max(1) as f64
    );
    assert!(
        points > count as usize * 10,
        "too few enforcement points: {points}"
    );
    assert!(denied > count as usize, "too few denied packets: {denied}");
    assert!(
        http_entries > count as usize / 10,
        "too few entries with HTTP rules: {http_entries}"
    );
}

#[test]
fn cases_are_deterministic() {
    let a = random_case(42);
    let b = random_case(42);
    assert_eq!(a.policy_yaml(), b.policy_yaml());
    assert_eq!(a.packets, b.packets);
    assert_eq!(a.state, b.state);
    assert_ne!(random_case(43).policy_yaml(), a.policy_yaml());
}

#[test]
fn lookup_follows_the_datapath_algorithm() {
    use crate::compiled::{DirectionPolicy, MatchType, PolicyEntry};
    use crate::eval::{DropReason, Verdict};
    let entry = |identity, protocol, port, plen, deny, rule_set| PolicyEntry {
        identity,
        protocol,
        port,
        port_prefix_len: plen,
        deny,
        audit: false,
        l7_rules: 0,
        match_type: MatchType::None,
        rule_set,
    };
    let dp = DirectionPolicy {
        enforced: true,
        selecting: 9,
        entries: vec![
            entry(0, 6, 80, 16, false, 1),
            entry(0, 0, 0, 0, true, 2),
            entry(300, 6, 0, 0, false, 3),
            entry(300, 6, 8000, 14, true, 4),
        ],
    };
    let r = |id, proto, port| {
        let l = lookup_direction(&dp, id, proto, port);
        (l.verdict, l.reason, l.rule_set)
    };
    assert_eq!(r(5, 6, 80), (Verdict::Allowed, DropReason::None, 1));
    assert_eq!(r(5, 17, 80), (Verdict::Denied, DropReason::PolicyDeny, 2));
    assert_eq!(r(300, 6, 80), (Verdict::Allowed, DropReason::None, 3));
    assert_eq!(
        r(300, 6, 8003),
        (Verdict::Denied, DropReason::PolicyDeny, 4)
    );
    // Identity 300 has no UDP entry: the identity-0 entries decide.
    assert_eq!(r(300, 17, 53), (Verdict::Denied, DropReason::PolicyDeny, 2));
    let empty = DirectionPolicy {
        enforced: true,
        selecting: 9,
        entries: vec![],
    };
    let l = lookup_direction(&empty, 1, 6, 1);
    assert_eq!(
        (l.verdict, l.reason, l.rule_set),
        (Verdict::Denied, DropReason::PolicyDenied, 9)
    );
}

#[test]
fn seeds_compile_like_they_evaluate() {
    use std::net::IpAddr;
    use std::path::Path;

    use crate::cluster::ClusterState;
    use crate::eval::{Options, Packet};
    use crate::set::PolicySet;

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let state = ClusterState::load_dir(&dir.join("seed-state")).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("seeds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let documents: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let policies = PolicySet::parse_str("seeds", &documents.join("---\n")).unwrap();
    let mut addrs: Vec<IpAddr> = state.endpoints.iter().flat_map(|e| e.ips.clone()).collect();
    addrs.extend(
        ["192.168.10.1", "192.168.10.2", "10.10.9.9", "1.1.1.1"]
            .map(|a| a.parse::<IpAddr>().unwrap()),
    );
    let mut packets = Vec::new();
    for src in &addrs {
        for dst in &addrs {
            for (protocol, dst_port) in [
                (6, 80),
                (6, 8080),
                (17, 53),
                (6, 53),
                (132, 53),
                (6, 9092),
                (6, 50051),
                (1, 8),
                (6, 443),
            ] {
                packets.push(Packet {
                    src: *src,
                    dst: *dst,
                    protocol,
                    src_port: 40000,
                    dst_port,
                });
            }
        }
    }
    for node in ["n1", "n2"] {
        for allow_localhost in [true, false] {
            let case = Case {
                seed: 0,
                state: state.clone(),
                options: Options {
                    local_node: node.into(),
                    allow_localhost,
                    http_flow_headers: Vec::new(),
                },
                documents: documents.clone(),
                policies: policies.clone(),
                packets: packets.clone(),
            };
            if let Err(m) = check_case(&case) {
                panic!("{m}");
            }
        }
    }
}
