//! `weir.Agent`: what the agent enforces, for `weir policy get` and `weir policy trace`.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use tonic::{Request, Response, Status};
use weir_policy::compiled::{DirectionPolicy, MatchType, PolicyEntry, PolicyRef};
use weir_proto::flow;
use weir_proto::google::protobuf::Timestamp;
use weir_proto::weir::{self as api, agent_server::Agent};

use crate::apply::{PolicyStatus, SourceFile};

#[derive(Clone)]
pub struct AgentService {
    pub(crate) status: Arc<RwLock<PolicyStatus>>,
    pub(crate) node_name: Arc<str>,
}

fn ts(t: SystemTime) -> Timestamp {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

fn policy(r: &PolicyRef, revision: u64) -> flow::Policy {
    flow::Policy {
        name: r.name.clone(),
        namespace: r.namespace.clone(),
        labels: Vec::new(),
        revision,
        kind: r.kind.clone(),
    }
}

fn source(f: &SourceFile) -> api::SourceFile {
    api::SourceFile {
        path: f.path.display().to_string(),
        content: f.content.clone(),
    }
}

/// Protocol names as policies write them.
pub fn protocol_name(p: u8) -> String {
    match p {
        0 => "ANY".into(),
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        other => other.to_string(),
    }
}

/// Hubble's names of policy match types.
pub fn match_type_name(m: MatchType) -> &'static str {
    match m {
        MatchType::None => "none",
        MatchType::L3Only => "L3-Only",
        MatchType::L3L4 => "L3-L4",
        MatchType::L4Only => "L4-Only",
        MatchType::All => "all",
        MatchType::L3Proto => "L3-Proto",
        MatchType::ProtoOnly => "Proto-Only",
    }
}

/// "80", "8080-8087" or "" (any port) for an entry's port prefix.
pub fn port_range(e: &PolicyEntry) -> String {
    if e.protocol == 0 || e.port_prefix_len == 0 {
        return String::new();
    }
    let span = 1u32 << (16 - u32::from(e.port_prefix_len.min(16)));
    let first = u32::from(e.port) & !(span - 1);
    if span == 1 {
        first.to_string()
    } else {
        format!("{first}-{}", first + span - 1)
    }
}

fn direction(d: &DirectionPolicy, s: &PolicyStatus) -> api::DirectionPolicy {
    let refs = |id: u32| -> Vec<flow::Policy> {
        s.compiled
            .rule_sets
            .get(&id)
            .map(|refs| refs.iter().map(|r| policy(r, s.revision)).collect())
            .unwrap_or_default()
    };
    api::DirectionPolicy {
        enforced: d.enforced,
        selected_by: refs(d.selecting),
        rules: d
            .entries
            .iter()
            .map(|e| api::PolicyRule {
                identity: e.identity,
                identity_labels: s
                    .compiled
                    .identities
                    .get(&e.identity)
                    .cloned()
                    .unwrap_or_default(),
                protocol: protocol_name(e.protocol),
                ports: port_range(e),
                deny: e.deny,
                audit: e.audit,
                match_type: match_type_name(e.match_type).to_string(),
                policies: refs(e.rule_set),
                http: http_rules(e.l7_rules, s),
            })
            .collect(),
    }
}

/// The HTTP rules of an entry's rule set (`l7_rules`, 0: none).
fn http_rules(set: u32, s: &PolicyStatus) -> Vec<api::HttpRule> {
    let Some(set) = s.compiled.http_rule_sets.get(&set).filter(|_| set != 0) else {
        return Vec::new();
    };
    set.rules
        .iter()
        .map(|r| api::HttpRule {
            method: r.rule.method.clone().unwrap_or_default(),
            path: r.rule.path.clone().unwrap_or_default(),
            host: r.rule.host.clone().unwrap_or_default(),
            headers: r
                .rule
                .headers
                .iter()
                .map(|h| {
                    let mut text = match &h.value {
                        Some(v) => format!("{}: {v}", h.name),
                        None => h.name.clone(),
                    };
                    if h.log_only {
                        text.push_str(" (mismatch: LOG)");
                    }
                    text
                })
                .collect(),
            policy: Some(policy(&r.policy, s.revision)),
            location: r.location.clone(),
        })
        .collect()
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn get_policy(
        &self,
        _: Request<api::GetPolicyRequest>,
    ) -> Result<Response<api::GetPolicyResponse>, Status> {
        let s = self
            .status
            .read()
            .map_err(|_| Status::internal("policy status lock poisoned"))?;
        let endpoints = s
            .compiled
            .endpoints
            .iter()
            .map(|ep| {
                let rt = s
                    .endpoints
                    .iter()
                    .find(|r| r.namespace == ep.namespace && r.name == ep.name);
                api::EndpointPolicy {
                    namespace: ep.namespace.clone(),
                    name: ep.name.clone(),
                    endpoint_id: rt.map(|r| r.ep_id).unwrap_or(0),
                    identity: ep.identity,
                    labels: s
                        .compiled
                        .identities
                        .get(&ep.identity)
                        .cloned()
                        .unwrap_or_default(),
                    interface: ep.interface.clone(),
                    attached: rt.is_some_and(|r| r.ifindex != 0),
                    ips: rt
                        .map(|r| r.ips.iter().map(ToString::to_string).collect())
                        .unwrap_or_default(),
                    ingress: Some(direction(&ep.ingress, &s)),
                    egress: Some(direction(&ep.egress, &s)),
                }
            })
            .collect();
        let (last_error, last_error_time) = match &s.last_error {
            Some((t, e)) => (e.clone(), Some(ts(*t))),
            None => (String::new(), None),
        };
        Ok(Response::new(api::GetPolicyResponse {
            revision: s.revision,
            policy_generation: s.policy_gen,
            applied_at: s.applied_at.map(ts),
            node_name: self.node_name.to_string(),
            policy_dir: s.policy_dir.display().to_string(),
            state_dir: s.state_dir.display().to_string(),
            policy_files: s.policy_files.iter().map(source).collect(),
            state_files: s.state_files.iter().map(source).collect(),
            endpoints,
            notices: s
                .compiled
                .notices
                .iter()
                .map(|n| api::Notice {
                    policy: Some(policy(&n.policy, s.revision)),
                    location: n.location.clone(),
                    message: n.message.clone(),
                })
                .collect(),
            last_error,
            last_error_time,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(protocol: u8, port: u16, port_prefix_len: u8) -> PolicyEntry {
        PolicyEntry {
            identity: 0,
            protocol,
            port,
            port_prefix_len,
            deny: false,
            audit: false,
            l7_rules: 0,
            match_type: MatchType::L4Only,
            rule_set: 0,
        }
    }

    #[test]
    fn port_prefixes_print_as_ranges() {
        assert_eq!(port_range(&entry(6, 80, 16)), "80");
        assert_eq!(port_range(&entry(6, 8083, 13)), "8080-8087");
        assert_eq!(port_range(&entry(6, 0, 0)), "");
        assert_eq!(port_range(&entry(0, 0, 0)), "");
    }
}
