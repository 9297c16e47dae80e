//! Evaluator vs compiler + lookup, with minimisation of failing cases.

use std::collections::BTreeSet;
use std::fmt;

use super::Case;
use super::http::random_request;
use super::rng::Rng;
use crate::cluster::ClusterState;
use crate::compile::compile;
use crate::compiled::{CompiledPolicy, Direction};
use crate::eval::{Decision, Evaluator, Packet, Verdict};
use crate::http::HttpRuleSet;
use crate::ipcache::lookup_entries;
use crate::lookup::{LookupResult, lookup_direction};

/// A disagreement between the evaluator and the compiled policy.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub seed: u64,
    pub packet: Packet,
    pub what: String,
    /// The (minimised) case, readable.
    pub description: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {}: {}", self.seed, self.what)?;
        writeln!(f, "packet: {:?}", self.packet)?;
        f.write_str(&self.description)
    }
}

/// Checks one packet; `Err(what)` describes the first disagreement.
fn check_packet(
    state: &ClusterState,
    ev: &Evaluator<'_>,
    compiled: &CompiledPolicy,
    packet: &Packet,
) -> Result<usize, String> {
    let trace = ev.evaluate(packet);
    let mut checked = 0;
    for (decision, remote_ip) in [(&trace.egress, packet.dst), (&trace.ingress, packet.src)] {
        let Some(d) = decision else { continue };
        let ep = compiled
            .endpoints
            .iter()
            .find(|e| format!("{}/{}", e.namespace, e.name) == d.endpoint)
            .ok_or_else(|| format!("endpoint {} is not in the compiled policy", d.endpoint))?;
        let remote = lookup_entries(&compiled.ipcache, remote_ip);
        if remote != d.remote_identity {
            return Err(format!(
                "{} of {}: ipcache gives identity {remote} for {remote_ip}, evaluator {}",
                d.direction, d.endpoint, d.remote_identity
            ));
        }
        let dp = match d.direction {
            Direction::Ingress => &ep.ingress,
            Direction::Egress => &ep.egress,
        };
        let got = lookup_direction(dp, remote, packet.protocol, packet.dst_port);
        compare(d, &got, compiled)?;
        let spec = state
            .endpoints
            .iter()
            .find(|e| e.to_string() == d.endpoint)
            .ok_or_else(|| format!("endpoint {} is not in the state", d.endpoint))?;
        check_http(ev, compiled, spec, d, &got, packet)?;
        checked += 1;
    }
    Ok(checked)
}

fn compare(d: &Decision, got: &LookupResult, compiled: &CompiledPolicy) -> Result<(), String> {
    let policies = got.policies(compiled);
    if d.verdict != got.verdict || d.reason != got.reason || d.policies != policies {
        return Err(format!(
            "{} of {}: evaluator {:?}/{:?} by {:?}, datapath {:?}/{:?} by {:?} (entry {:?})",
            d.direction,
            d.endpoint,
            d.verdict,
            d.reason,
            d.policies,
            got.verdict,
            got.reason,
            policies,
            got.entry
        ));
    }
    Ok(())
}

/// The HTTP rules of the entry against the evaluator's, and a few requests through the
/// entry's tables against the evaluator's decision.
fn check_http(
    ev: &Evaluator<'_>,
    compiled: &CompiledPolicy,
    ep: &crate::cluster::EndpointSpec,
    d: &Decision,
    got: &LookupResult,
    packet: &Packet,
) -> Result<(), String> {
    let (proto, port) = (packet.protocol, packet.dst_port);
    let want = ev.http_rules(ep, d.direction, d.remote_identity, proto, port);
    let id = got.entry.as_ref().map_or(0, |e| e.l7_rules);
    let have: Option<&HttpRuleSet> = match id {
        0 => None,
        id => Some(
            compiled
                .http_rule_sets
                .get(&id)
                .ok_or_else(|| format!("HTTP rule set {id} is not listed"))?,
        ),
    };
    if want.as_ref() != have {
        return Err(format!(
            "{} of {}: evaluator HTTP rules {want:?}, datapath {have:?} (entry {:?})",
            d.direction, d.endpoint, got.entry
        ));
    }
    let Some(set) = have else { return Ok(()) };
    if d.verdict != Verdict::Allowed {
        return Err(format!(
            "{} of {}: HTTP rules on a deny",
            d.direction, d.endpoint
        ));
    }
    let tables = compiled
        .http_tables
        .get(&id)
        .ok_or_else(|| format!("HTTP tables {id} are missing"))?;
    let mut rng = Rng::new(u64::from(port) << 32 | u64::from(d.remote_identity));
    for _ in 0..8 {
        let req = random_request(&mut rng, set);
        if !req.is_well_formed() {
            continue;
        }
        let decision = ev.decide_http_at(ep, d.direction, d.remote_identity, proto, port, &req);
        let datapath = tables.decide(&req).map(|i| {
            let r = &set.rules[i];
            (r.policy.clone(), r.location.clone())
        });
        if decision.allowed != datapath.is_some() || decision.rule != datapath {
            return Err(format!(
                "{} of {}: request {req:?}: evaluator {:?} by {:?}, datapath {datapath:?}",
                d.direction, d.endpoint, decision.allowed, decision.rule
            ));
        }
    }
    Ok(())
}

/// Every (identity, key) appears once per direction (the datapath's LPM keys are unique).
fn check_unique_keys(compiled: &CompiledPolicy) -> Result<(), String> {
    for ep in &compiled.endpoints {
        for (dir, dp) in [("ingress", &ep.ingress), ("egress", &ep.egress)] {
            let mut seen = BTreeSet::new();
            for e in &dp.entries {
                if !seen.insert((e.identity, e.protocol, e.port, e.port_prefix_len)) {
                    return Err(format!(
                        "{}/{} {dir}: duplicate key {e:?}",
                        ep.namespace, ep.name
                    ));
                }
            }
        }
        for dp in [&ep.ingress, &ep.egress] {
            for e in &dp.entries {
                if e.rule_set != 0 && !compiled.rule_sets.contains_key(&e.rule_set) {
                    return Err(format!("rule set {} is not listed", e.rule_set));
                }
                if e.l7_rules != 0
                    && (e.deny
                        || e.protocol != crate::model::IPPROTO_TCP
                        || e.port_prefix_len != 16
                        || !compiled.http_rule_sets.contains_key(&e.l7_rules))
                {
                    return Err(format!("bad HTTP rule set reference in {e:?}"));
                }
            }
        }
    }
    if !compiled
        .http_tables
        .keys()
        .eq(compiled.http_rule_sets.keys())
    {
        return Err("http_tables and http_rule_sets have different ids".into());
    }
    Ok(())
}

/// Runs every packet of the case; returns the number of enforcement points checked.
pub fn check_case(case: &Case) -> Result<usize, Box<Mismatch>> {
    let fail = |packet: Packet, what: String| {
        let (small, what) = minimise(case, packet, what);
        Box::new(Mismatch {
            seed: case.seed,
            packet,
            what,
            description: describe(&small, packet),
        })
    };
    let compiled = match compile(&case.state, &case.policies, &case.options) {
        Ok(c) => c,
        Err(e) => {
            return Err(Box::new(Mismatch {
                seed: case.seed,
                packet: case.packets[0],
                what: format!("compile failed: {e}"),
                description: describe(case, case.packets[0]),
            }));
        }
    };
    if let Err(what) = check_unique_keys(&compiled) {
        return Err(fail(case.packets[0], what));
    }
    let ev = Evaluator::new(&case.state, &case.policies, &case.options);
    let mut checked = 0;
    for packet in &case.packets {
        match check_packet(&case.state, &ev, &compiled, packet) {
            Ok(n) => checked += n,
            Err(what) => return Err(fail(*packet, what)),
        }
    }
    Ok(checked)
}

fn fails(case: &Case, packet: Packet) -> Option<String> {
    let compiled = compile(&case.state, &case.policies, &case.options).ok()?;
    if let Err(w) = check_unique_keys(&compiled) {
        return Some(w);
    }
    let ev = Evaluator::new(&case.state, &case.policies, &case.options);
    check_packet(&case.state, &ev, &compiled, &packet).err()
}

/// Drops policy documents (and then uninvolved endpoints) while the packet still fails.
fn minimise(case: &Case, packet: Packet, what: String) -> (Case, String) {
    let mut best = case.clone();
    let mut what = what;
    let mut i = 0;
    while i < best.documents.len() {
        let mut docs = best.documents.clone();
        docs.remove(i);
        match best.with_documents(docs) {
            Ok(smaller) => match fails(&smaller, packet) {
                Some(w) => {
                    best = smaller;
                    what = w;
                }
                None => i += 1,
            },
            Err(_) => i += 1,
        }
    }
    let mut i = 0;
    while i < best.state.endpoints.len() {
        let involved = best.state.endpoints[i]
            .ips
            .iter()
            .any(|ip| *ip == packet.src || *ip == packet.dst);
        if involved {
            i += 1;
            continue;
        }
        let mut smaller = best.clone();
        smaller.state.endpoints.remove(i);
        match fails(&smaller, packet) {
            Some(w) => {
                best = smaller;
                what = w;
            }
            None => i += 1,
        }
    }
    (best, what)
}

fn describe(case: &Case, packet: Packet) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "local node {}, allow_localhost {}\nendpoints:\n",
        case.local_node(),
        case.options.allow_localhost
    ));
    for ep in &case.state.endpoints {
        out.push_str(&format!(
            "  {} on {} ips {:?} labels {:?} named ports {:?}\n",
            ep, ep.node, ep.ips, ep.labels, ep.named_ports
        ));
    }
    out.push_str("namespaces:\n");
    for ns in &case.state.cluster.namespaces {
        out.push_str(&format!("  {} {:?}\n", ns.name, ns.labels));
    }
    out.push_str("policies:\n");
    out.push_str(&case.policy_yaml());
    let ev = Evaluator::new(&case.state, &case.policies, &case.options);
    out.push_str(&format!("\nevaluator:\n{}\n", ev.evaluate(&packet)));
    if let Ok(compiled) = compile(&case.state, &case.policies, &case.options) {
        for ep in &compiled.endpoints {
            for (dir, dp) in [("ingress", &ep.ingress), ("egress", &ep.egress)] {
                out.push_str(&format!(
                    "compiled {}/{} {dir} enforced {} selecting {}:\n",
                    ep.namespace, ep.name, dp.enforced, dp.selecting
                ));
                for e in &dp.entries {
                    out.push_str(&format!("  {e:?}\n"));
                }
            }
        }
        out.push_str(&format!("rule sets: {:?}\n", compiled.rule_sets));
        out.push_str(&format!("HTTP rule sets: {:?}\n", compiled.http_rule_sets));
        out.push_str(&format!("ipcache: {:?}\n", compiled.ipcache));
    }
    out
}
