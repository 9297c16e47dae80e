//! The kernel must agree with the reference evaluator: generated (policy set, cluster, packet)
//! cases run through the real `from_container`/`to_container` programs with BPF_PROG_TEST_RUN
//! and through `weir_policy`'s evaluator; any difference in verdict, drop reason, identities or
//! deciding policies fails the test with the case's seed and a description.
//!
//! `WEIR_DIFF_CASES` (default 1000, 40 packets each) and `WEIR_DIFF_SEED` (first seed) tune it.
//! Privileged: needs root for BPF and a network namespace with one interface per endpoint.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use common::Netns;
use weir_flow_agent::datapath::{
    Datapath, DatapathOptions, Hook, LocalEndpoint, MapWriter, Timing,
};
use weir_flow_agent::testrun::{self, Packet, TC_ACT_OK, TC_ACT_SHOT};
use weir_policy::compiled::{CompiledPolicy, Direction, PolicyRef};
use weir_policy::eval::{Decision, Trace, Verdict};
use weir_policy::testgen::{Case, random_case};
use weir_probes::abi::{self, CtKey, FlowEvent};

/// Interfaces created for endpoints (a case has fewer local endpoints).
const POOL: usize = 48;

/// What the kernel did at one enforcement point.
#[derive(Debug, PartialEq, Eq)]
struct Observed {
    verdict: Verdict,
    reason: u16,
    policies: BTreeSet<PolicyRef>,
    src_identity: Option<u32>,
    dst_identity: Option<u32>,
}

struct Harness {
    dp: Datapath,
    writer: MapWriter,
    events: RingBuf<MapData>,
    ifindex: Vec<u32>,
    sport: u16,
}

impl Harness {
    fn drain(&mut self) -> Vec<FlowEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.events.next() {
            out.push(FlowEvent::decode(&item).expect("decodable event"));
        }
        out
    }

    /// Runs one hook on one packet and reads back what it reported.
    fn observe(
        &mut self,
        hook: Hook,
        ifindex: u32,
        p: &Packet,
        compiled: &CompiledPolicy,
    ) -> Observed {
        self.drain();
        let frame = p.bytes();
        let prog = self.dp.program(hook).unwrap();
        let (ret, _) = testrun::run(prog, &frame, ifindex, 1).unwrap();
        let events = self.drain();
        // Forget the connection, so the next packet is decided anew (the evaluator has no state).
        let dir = match hook {
            Hook::FromContainer => abi::DIR_EGRESS,
            Hook::ToContainer => abi::DIR_INGRESS,
            Hook::FromNetdev => unreachable!("endpoint hooks only"),
        };
        let echo = match p.protocol {
            1 => matches!(p.dport, 0 | 8),
            58 => matches!(p.dport, 128 | 129),
            _ => false,
        };
        let (sport, dport) = match p.protocol {
            6 | 17 | 132 => (p.sport, p.dport),
            1 | 58 if echo => (p.sport, p.sport),
            _ => (0, 0),
        };
        let mut key = CtKey {
            sport,
            dport,
            protocol: p.protocol,
            direction: dir,
            family: if p.src.is_ipv4() { 4 } else { 6 },
            ifindex,
            ..Default::default()
        };
        put(&mut key.saddr, p.src);
        put(&mut key.daddr, p.dst);
        let _ = self.writer.ct().remove(&key);
        assert!(
            self.writer.ct().iter().next().is_none(),
            "a connection-tracking entry outlived its packet {p:?}"
        );

        let verdict = match ret {
            TC_ACT_OK => Verdict::Allowed,
            TC_ACT_SHOT => Verdict::Denied,
            other => panic!("unexpected TC verdict {other}"),
        };
        let decisive = events
            .iter()
            .find(|e| e.r#type == abi::EVENT_DROP)
            .or_else(|| events.first());
        let policies = decisive
            .filter(|e| e.rule_set != 0)
            .map(|e| {
                compiled
                    .rule_sets
                    .get(&e.rule_set)
                    .unwrap_or_else(|| {
                        panic!(
                            "event names rule set {} the compiler never produced",
                            e.rule_set
                        )
                    })
                    .iter()
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Observed {
            verdict,
            reason: decisive.map(|e| e.drop_reason).unwrap_or(0),
            policies,
            src_identity: decisive.map(|e| e.src_identity),
            dst_identity: decisive.map(|e| e.dst_identity),
        }
    }
}

fn put(dst: &mut [u8; 16], ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => dst[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => *dst = a.octets(),
    }
}

fn expect(d: &Decision, trace: &Trace) -> Observed {
    Observed {
        verdict: d.verdict,
        reason: d.reason.code().into(),
        policies: d.policies.iter().cloned().collect(),
        src_identity: Some(trace.src.identity),
        dst_identity: Some(trace.dst.identity),
    }
}

fn check_case(h: &mut Harness, case: &Case) -> Result<(usize, usize), String> {
    let compiled = weir_policy::compile(&case.state, &case.policies, &case.options)
        .map_err(|e| format!("compile: {e}"))?;
    assert!(
        compiled.endpoints.len() <= POOL,
        "seed {}: too many local endpoints",
        case.seed
    );
    let slots: BTreeMap<String, usize> = compiled
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("{}/{}", e.namespace, e.name), i))
        .collect();
    let ips: Vec<Vec<IpAddr>> = compiled
        .endpoints
        .iter()
        .map(|e| {
            case.state
                .endpoint(&e.namespace, &e.name)
                .unwrap()
                .ips
                .clone()
        })
        .collect();
    let local: Vec<LocalEndpoint<'_>> = compiled
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, policy)| LocalEndpoint {
            ifindex: h.ifindex[i],
            ep_id: i as u32 + 1,
            ips: &ips[i],
            policy,
        })
        .collect();
    h.writer
        .apply(&compiled, &local)
        .map_err(|e| format!("apply: {e}"))?;

    let mut checked = 0;
    let mut unobserved = 0;
    for (n, (packet, trace)) in case.packets.iter().zip(case.expected()).enumerate() {
        // A fresh source port per packet, so no packet is mistaken for a reply of another.
        h.sport = if h.sport >= 65_000 { 1024 } else { h.sport + 1 };
        let p = Packet {
            src: packet.src,
            dst: packet.dst,
            protocol: packet.protocol,
            sport: h.sport,
            dport: packet.dst_port,
            tcp_flags: 0x02,
        };
        for (decision, hook, dir) in [
            (&trace.egress, Hook::FromContainer, Direction::Egress),
            (&trace.ingress, Hook::ToContainer, Direction::Ingress),
        ] {
            let Some(d) = decision else { continue };
            let idx = *slots
                .get(&d.endpoint)
                .unwrap_or_else(|| panic!("{} is not a compiled endpoint", d.endpoint));
            let mut got = h.observe(hook, h.ifindex[idx], &p, &compiled);
            let want = expect(d, &trace);
            if got.src_identity.is_none() {
                // Nothing reported: an allowed packet between two local endpoints where the
                // source has no egress policy (no policy verdict; the destination's hook
                // traces it). Only the verdict is observable here.
                assert_eq!(got.verdict, Verdict::Allowed, "a drop is always reported");
                assert!(
                    !d.enforced,
                    "an enforced direction always reports a policy verdict"
                );
                unobserved += 1;
                got.reason = want.reason;
                got.policies = want.policies.clone();
                got.src_identity = want.src_identity;
                got.dst_identity = want.dst_identity;
            }
            if got != want {
                let prefixes: Vec<String> = compiled
                    .ipcache
                    .iter()
                    .filter(|e| e.prefix.contains(&p.src) || e.prefix.contains(&p.dst))
                    .map(|e| format!("{} -> {}", e.prefix, e.identity))
                    .collect();
                return Err(format!(
                    "seed {} packet {n} at {dir} of {}: kernel {got:?}, evaluator {want:?}\npacket {p:?}\nipcache: {prefixes:?}\npolicies:\n{}\ntrace: {trace:#?}",
                    case.seed,
                    d.endpoint,
                    case.policy_yaml()
                ));
            }
            checked += 1;
        }
    }
    Ok((checked, unobserved))
}

#[test]
fn kernel_agrees_with_the_reference_evaluator() {
    if !weir_lab::privileged("kernel_agrees_with_the_reference_evaluator") {
        return;
    }
    let cases: u64 = std::env::var("WEIR_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let first: u64 = std::env::var("WEIR_DIFF_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let ns = Netns::new("wdiff", POOL, false);
    let name = ns.0.clone();
    let result = std::thread::spawn(move || {
        common::enter(&name);
        // Every drop reported (no aggregation), so each packet's reason and policies are seen.
        let options = DatapathOptions {
            timing: Timing {
                drop_interval: Duration::ZERO,
                ..Timing::default()
            },
            ..DatapathOptions::default()
        };
        let mut dp = Datapath::load(&options).expect("load the datapath");
        // The verifier's work in this configuration (every drop reported), the costliest one
        // the tests load (docs/performance.md; shown with --nocapture).
        for hook in Hook::ALL {
            let info = dp.program(hook).unwrap().info().unwrap();
            eprintln!(
                "{}: {} verified instructions",
                hook.program(),
                info.verified_instruction_count().unwrap_or(0)
            );
        }
        let writer = dp.take_writer().unwrap();
        let events = dp.take_events().unwrap();
        let ifindex = (0..POOL)
            .map(|i| nix::net::if_::if_nametoindex(format!("v{i}").as_str()).unwrap())
            .collect();
        let mut h = Harness {
            dp,
            writer,
            events,
            ifindex,
            sport: 1024,
        };
        let (mut points, mut unobserved, mut denied) = (0usize, 0usize, 0usize);
        for seed in first..first + cases {
            let case = random_case(seed);
            denied += case
                .expected()
                .iter()
                .filter(|t| t.verdict() == Verdict::Denied)
                .count();
            let (p, u) = check_case(&mut h, &case)?;
            points += p;
            unobserved += u;
        }
        Ok::<_, String>((points, unobserved, denied))
    })
    .join()
    .expect("differential thread panicked");
    drop(ns);
    match result {
        Ok((points, unobserved, denied)) => {
            eprintln!(
                "{cases} cases: kernel and evaluator agree at {points} enforcement points \
                 ({denied} denied packets; {unobserved} unreported local allows compared on verdict only)"
            );
            assert!(
                points > cases as usize * 10,
                "too few enforcement points checked: {points}"
            );
        }
        Err(mismatch) => panic!("{mismatch}"),
    }
}
