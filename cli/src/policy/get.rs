//! `weir policy get`: what the agent enforces (`weir.Agent/GetPolicy`).
//!
//! Text output: a header (revision, node, applied time, directories), then
//! per endpoint its identity, labels, interface and, per direction, whether
//! default deny is on, the policies selecting it and the datapath rules as a
//! table; then `Not enforced yet:` and the last rejected change. `-o json`
//! prints the response as protojson (proto field names).

use clap::Args;
use weir_proto::flow;
use weir_proto::weir::{DirectionPolicy, EndpointPolicy, GetPolicyResponse, Notice, PolicyRule};

use super::{Format, policy_name, pretty_json, print, push_list};
use crate::client::ServerArgs;
use crate::error::CliError;
use crate::observe::printer::clean;
use crate::tabwriter::TabWriter;
use crate::timefmt::TimeFormat;

/// Flags of `weir policy get`.
#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Only this endpoint (NAME means default/NAME), and the notices of the
    /// policies that apply to it
    #[arg(long, value_name = "NS/NAME")]
    pub endpoint: Option<String>,

    /// Output format
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t,
        help_heading = "Formatting"
    )]
    pub output: Format,

    #[command(flatten)]
    pub server: ServerArgs,
}

impl GetArgs {
    pub async fn run(&self) -> Result<(), CliError> {
        let mut res = super::agent::get_policy(&self.server).await?;
        if let Some(wanted) = &self.endpoint {
            res = only_endpoint(res, wanted)?;
        }
        let text = match self.output {
            Format::Text => render_text(&res),
            Format::Json => pretty_json(&res)?,
        };
        print(&text)
    }
}

fn policy_of(p: &flow::Policy) -> String {
    policy_name(&p.kind, &p.namespace, &p.name)
}

fn same_policy(a: &flow::Policy, b: &flow::Policy) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
}

/// Keeps one endpoint, and the notices of the policies that select it or
/// appear in its rules. An endpoint the agent does not enforce is an error.
pub fn only_endpoint(
    mut res: GetPolicyResponse,
    wanted: &str,
) -> Result<GetPolicyResponse, CliError> {
    let (ns, name) = wanted.split_once('/').unwrap_or(("default", wanted));
    res.endpoints
        .retain(|e| e.namespace == ns && e.name == name);
    let Some(ep) = res.endpoints.first() else {
        return Err(CliError::runtime(format!(
            "no endpoint {ns}/{name} is enforced on node {}",
            res.node_name
        )));
    };
    let mut related: Vec<flow::Policy> = Vec::new();
    for dir in [&ep.ingress, &ep.egress].into_iter().flatten() {
        related.extend(dir.selected_by.iter().cloned());
        for rule in &dir.rules {
            related.extend(rule.policies.iter().cloned());
        }
    }
    res.notices.retain(|n| {
        n.policy
            .as_ref()
            .is_some_and(|p| related.iter().any(|r| same_policy(p, r)))
    });
    Ok(res)
}

/// The text output; untrusted text is made safe for terminals.
pub fn render_text(res: &GetPolicyResponse) -> String {
    let mut out = String::new();
    let revision = if res.policy_generation > 0 {
        format!(
            "{} (datapath generation {})",
            res.revision, res.policy_generation
        )
    } else {
        res.revision.to_string()
    };
    let applied = match &res.applied_at {
        Some(t) => TimeFormat::Rfc3339.format(Some(t)),
        None => "not yet".to_owned(),
    };
    out.push_str(&format!("Revision:    {revision}\n"));
    out.push_str(&format!("Node:        {}\n", res.node_name));
    out.push_str(&format!("Applied:     {applied}\n"));
    out.push_str(&format!(
        "Policy dir:  {} ({})\n",
        res.policy_dir,
        files(res.policy_files.len())
    ));
    out.push_str(&format!(
        "State dir:   {} ({})\n",
        res.state_dir,
        files(res.state_files.len())
    ));
    if res.endpoints.is_empty() {
        out.push_str("\nNo local endpoints.\n");
    }
    for ep in &res.endpoints {
        out.push('\n');
        endpoint(&mut out, ep);
    }
    if !res.notices.is_empty() {
        out.push_str("\nNot enforced yet:\n");
        for n in &res.notices {
            out.push_str(&format!("  {}\n", notice(n)));
        }
    }
    if !res.last_error.is_empty() {
        let when = TimeFormat::Rfc3339.format(res.last_error_time.as_ref());
        out.push_str(&format!(
            "\nLast rejected change ({when}); the policy above stays enforced:\n"
        ));
        for line in res.last_error.lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    clean(&out)
}

fn files(n: usize) -> String {
    format!("{n} file{}", if n == 1 { "" } else { "s" })
}

fn notice(n: &Notice) -> String {
    let who = n.policy.as_ref().map(policy_of).unwrap_or_default();
    format!("{who}, {}: {}", n.location, n.message)
}

fn endpoint(out: &mut String, ep: &EndpointPolicy) {
    out.push_str(&format!("Endpoint {}/{}\n", ep.namespace, ep.name));
    out.push_str(&format!("  Endpoint ID:  {}\n", ep.endpoint_id));
    out.push_str(&format!("  Identity:     {}\n", ep.identity));
    push_list(out, 2, "Labels:       ", &ep.labels);
    let attached = if ep.attached {
        "attached"
    } else {
        "not attached: no such interface on this node"
    };
    out.push_str(&format!("  Interface:    {} ({attached})\n", ep.interface));
    out.push_str(&format!(
        "  IPs:          {}\n",
        if ep.ips.is_empty() {
            "-".to_owned()
        } else {
            ep.ips.join(", ")
        }
    ));
    let empty = DirectionPolicy::default();
    direction(out, "Ingress", ep.ingress.as_ref().unwrap_or(&empty));
    direction(out, "Egress", ep.egress.as_ref().unwrap_or(&empty));
}

fn direction(out: &mut String, name: &str, d: &DirectionPolicy) {
    let label = format!("{name}:");
    if d.enforced {
        let by: Vec<String> = d.selected_by.iter().map(policy_of).collect();
        out.push_str(&format!(
            "  {label:<13} default deny, selected by {}\n",
            if by.is_empty() {
                "-".to_owned()
            } else {
                by.join(", ")
            }
        ));
    } else {
        out.push_str(&format!(
            "  {label:<13} default allow (no policy with default deny selects it)\n"
        ));
    }
    if d.rules.is_empty() {
        out.push_str("    no rules\n");
        return;
    }
    out.push_str(&rule_table(&d.rules));
    out.push_str(&http_rules(&d.rules));
}

/// The HTTP rules of the allows restricted to them, below the rule table.
pub fn http_rules(rules: &[PolicyRule]) -> String {
    let mut out = String::new();
    for r in rules.iter().filter(|r| !r.http.is_empty()) {
        let peer = if r.identity == 0 {
            "any identity".to_owned()
        } else if r.identity_labels.is_empty() {
            format!("identity {}", r.identity)
        } else {
            format!("identity {} ({})", r.identity, r.identity_labels.join(","))
        };
        out.push_str(&format!(
            "    HTTP rules of the ALLOW for {peer} on {}/{}: a request must match one\n",
            r.ports, r.protocol
        ));
        let mut tw = TabWriter::hubble();
        tw.write("      METHOD\tPATH\tHOST\tHEADERS\tPOLICY\n");
        let any = |s: &str| {
            if s.is_empty() {
                "any".to_owned()
            } else {
                s.to_owned()
            }
        };
        for h in &r.http {
            let headers = if h.headers.is_empty() {
                "-".to_owned()
            } else {
                h.headers.join(", ")
            };
            let policy = h
                .policy
                .as_ref()
                .map(policy_of)
                .unwrap_or_else(|| "-".into());
            tw.write(&format!(
                "      {}\t{}\t{}\t{headers}\t{policy}\n",
                any(&h.method),
                any(&h.path),
                any(&h.host)
            ));
        }
        out.push_str(&tw.render());
    }
    out
}

/// The rules as a table, indented by four spaces.
pub fn rule_table(rules: &[PolicyRule]) -> String {
    let mut tw = TabWriter::hubble();
    tw.write("    ACTION\tIDENTITY\tPROTOCOL\tPORTS\tMATCH\tPOLICIES\tLABELS\n");
    for r in rules {
        let mut action = if r.deny { "DENY" } else { "ALLOW" }.to_owned();
        if r.audit {
            action.push_str(" (audit)");
        }
        let (identity, labels) = if r.identity == 0 {
            ("any".to_owned(), "-".to_owned())
        } else if r.identity_labels.is_empty() {
            (r.identity.to_string(), "-".to_owned())
        } else {
            (r.identity.to_string(), r.identity_labels.join(","))
        };
        let ports = if r.ports.is_empty() {
            "any"
        } else {
            r.ports.as_str()
        };
        let policies: Vec<String> = r.policies.iter().map(policy_of).collect();
        let policies = if policies.is_empty() {
            "-".to_owned()
        } else {
            policies.join(", ")
        };
        tw.write(&format!(
            "    {action}\t{identity}\t{}\t{ports}\t{}\t{policies}\t{labels}\n",
            r.protocol, r.match_type
        ));
    }
    tw.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cnp(name: &str) -> flow::Policy {
        flow::Policy {
            name: name.into(),
            namespace: "default".into(),
            kind: "CiliumNetworkPolicy".into(),
            ..Default::default()
        }
    }

    #[test]
    fn rule_tables() {
        let rules = vec![
            PolicyRule {
                identity: 0,
                protocol: "ANY".into(),
                deny: false,
                match_type: "all".into(),
                ..Default::default()
            },
            PolicyRule {
                identity: 1234,
                identity_labels: vec!["k8s:app=a".into(), "k8s:x=y".into()],
                protocol: "TCP".into(),
                ports: "8080-8087".into(),
                deny: true,
                audit: true,
                match_type: "L3-L4".into(),
                policies: vec![cnp("a"), cnp("b")],
                http: Vec::new(),
            },
        ];
        assert_eq!(
            rule_table(&rules),
            "    ACTION         IDENTITY   PROTOCOL   PORTS       MATCH   POLICIES                                                       LABELS\n\
             \x20   ALLOW          any        ANY        any         all     -                                                              -\n\
             \x20   DENY (audit)   1234       TCP        8080-8087   L3-L4   CiliumNetworkPolicy default/a, CiliumNetworkPolicy default/b   k8s:app=a,k8s:x=y\n"
        );
    }

    #[test]
    fn http_rules_are_listed_under_their_allow() {
        use weir_proto::weir::HttpRule;
        let rule = PolicyRule {
            identity: 1234,
            identity_labels: vec!["k8s:app=frontend".into()],
            protocol: "TCP".into(),
            ports: "80".into(),
            match_type: "L3-L4".into(),
            http: vec![
                HttpRule {
                    method: "GET".into(),
                    path: "/api/v1/users/?.*".into(),
                    policy: Some(cnp("users")),
                    ..Default::default()
                },
                HttpRule {
                    method: "POST".into(),
                    path: "/api/v1/orders".into(),
                    headers: vec!["Content-Type: application/json".into()],
                    policy: Some(cnp("api")),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            http_rules(&[PolicyRule::default(), rule]),
            "    HTTP rules of the ALLOW for identity 1234 (k8s:app=frontend) on 80/TCP: a request must match one\n\
             \x20     METHOD   PATH                HOST   HEADERS                          POLICY\n\
             \x20     GET      /api/v1/users/?.*   any    -                                CiliumNetworkPolicy default/users\n\
             \x20     POST     /api/v1/orders      any    Content-Type: application/json   CiliumNetworkPolicy default/api\n"
        );
    }

    #[test]
    fn endpoint_filter_keeps_related_notices() {
        let res = GetPolicyResponse {
            node_name: "n1".into(),
            endpoints: vec![
                EndpointPolicy {
                    namespace: "default".into(),
                    name: "a".into(),
                    ingress: Some(DirectionPolicy {
                        enforced: true,
                        selected_by: vec![cnp("pa")],
                        rules: Vec::new(),
                    }),
                    ..Default::default()
                },
                EndpointPolicy {
                    namespace: "default".into(),
                    name: "b".into(),
                    ..Default::default()
                },
            ],
            notices: vec![
                Notice {
                    policy: Some(cnp("pa")),
                    location: "spec".into(),
                    message: "m".into(),
                },
                Notice {
                    policy: Some(cnp("pb")),
                    location: "spec".into(),
                    message: "m".into(),
                },
            ],
            ..Default::default()
        };
        let only = only_endpoint(res.clone(), "a").unwrap();
        assert_eq!(only.endpoints.len(), 1);
        assert_eq!(only.notices.len(), 1);
        assert_eq!(only.notices[0].policy, Some(cnp("pa")));
        assert_eq!(
            only_endpoint(res, "kube-system/a").unwrap_err().to_string(),
            "no endpoint kube-system/a is enforced on node n1"
        );
    }
}
