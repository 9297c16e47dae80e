//! `weir policy trace`: one connection through the policies, decided by the
//! reference evaluator (`weir_policy::Evaluator`), printed like
//! `cilium policy trace`.
//!
//! The policies and the cluster come from files (`--policies`, `--state`)
//! or from the agent (the files it last applied, see [`super::agent`]).
//! Endpoints and addresses are traced as packets; label sets stand for
//! identities (see `Evaluator::trace`). By default every endpoint is an
//! enforcement point on its own node; `--node` evaluates as that node's
//! agent does (only its endpoints enforce).
//!
//! `-o json` prints one [`TraceReport`]; docs/cli.md documents its shape.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::{ArgAction, ArgGroup, Args};
use serde::Serialize;
use weir_policy::compiled::{Direction, PolicyRef};
use weir_policy::eval::Party;
use weir_policy::labels::source;
use weir_policy::{
    ClusterState, Decision, DropReason, Evaluator, Label, Options, PolicySet, TraceTarget, Verdict,
};

use super::{Format, files, policy_name, pretty_json, print, push_list, reserved_identity_name};
use crate::client::ServerArgs;
use crate::error::CliError;
use crate::observe::printer::clean;

/// Flags of `weir policy trace`.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["src_labels", "src_endpoint", "src_ip"])))]
#[command(group(ArgGroup::new("destination").required(true).args(["dst_labels", "dst_endpoint", "dst_ip"])))]
pub struct TraceArgs {
    /// Source pod labels (k=v,k2=v2), or reserved:/cidr: labels such as
    /// reserved:host or cidr:1.2.3.0/24
    #[arg(
        long,
        value_name = "LABELS",
        value_delimiter = ',',
        help_heading = "Source (one of)"
    )]
    pub src_labels: Vec<String>,
    /// Namespace of the --src-labels pod
    #[arg(long, value_name = "NS", help_heading = "Source (one of)")]
    pub src_namespace: Option<String>,
    /// Source endpoint of the cluster state (NAME means default/NAME)
    #[arg(long, value_name = "NS/NAME", help_heading = "Source (one of)")]
    pub src_endpoint: Option<String>,
    /// Source address (an endpoint's, a node's or any other)
    #[arg(long, value_name = "IP", help_heading = "Source (one of)")]
    pub src_ip: Option<IpAddr>,

    /// Destination pod labels (k=v,k2=v2), or reserved:/cidr: labels
    #[arg(
        long,
        value_name = "LABELS",
        value_delimiter = ',',
        help_heading = "Destination (one of)"
    )]
    pub dst_labels: Vec<String>,
    /// Namespace of the --dst-labels pod
    #[arg(long, value_name = "NS", help_heading = "Destination (one of)")]
    pub dst_namespace: Option<String>,
    /// Destination endpoint of the cluster state (NAME means default/NAME)
    #[arg(long, value_name = "NS/NAME", help_heading = "Destination (one of)")]
    pub dst_endpoint: Option<String>,
    /// Destination address
    #[arg(long, value_name = "IP", help_heading = "Destination (one of)")]
    pub dst_ip: Option<IpAddr>,

    /// Destination port and protocol: 80/TCP, 80 (TCP), 53/UDP, 9/SCTP,
    /// 8/ICMP and 128/ICMPv6 (the ICMP type), or any (only rules without
    /// ports match)
    #[arg(long, value_name = "PORT[/PROTO]", default_value = "any", value_parser = parse_dport)]
    pub dport: Dport,

    /// Policy files, or directories of *.yaml/*.yml files, instead of the
    /// agent's policies
    #[arg(long, value_name = "FILE|DIR", num_args = 1.., help_heading = "Policies")]
    pub policies: Vec<PathBuf>,
    /// Cluster state directory (cluster.yaml, endpoints/*.yaml) for
    /// --policies; needed by --*-endpoint
    #[arg(
        long,
        value_name = "DIR",
        requires = "policies",
        help_heading = "Policies"
    )]
    pub state: Option<PathBuf>,
    /// Evaluate as the agent of this node: only its endpoints enforce
    /// [default: every endpoint, on its own node]
    #[arg(long, value_name = "NAME", help_heading = "Policies")]
    pub node: Option<String>,
    /// Allow traffic from the host to its endpoints unless a deny rule
    /// matches (Cilium's allow-localhost, the agent's default)
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        action = ArgAction::Set,
        help_heading = "Policies"
    )]
    pub allow_localhost: bool,

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

/// `--dport`: IP protocol and destination port (the ICMP type for ICMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dport {
    /// 0 = any (only rules without ports match).
    pub protocol: u8,
    pub port: u16,
}

impl Dport {
    pub const ANY: Dport = Dport {
        protocol: 0,
        port: 0,
    };
}

/// Protocol names as policies write them.
pub fn protocol_name(protocol: u8) -> String {
    match protocol {
        0 => "ANY".into(),
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        58 => "ICMPv6".into(),
        132 => "SCTP".into(),
        other => other.to_string(),
    }
}

impl fmt::Display for Dport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.protocol == 0 {
            f.write_str("any")
        } else {
            write!(f, "{}/{}", self.port, protocol_name(self.protocol))
        }
    }
}

/// Reads `--dport`: `PORT[/PROTOCOL]` (TCP when omitted) or `any`.
pub fn parse_dport(text: &str) -> Result<Dport, String> {
    if text.eq_ignore_ascii_case("any") {
        return Ok(Dport::ANY);
    }
    let (port, proto) = text.split_once('/').unwrap_or((text, "TCP"));
    let protocol = match proto.to_ascii_uppercase().as_str() {
        "TCP" => 6,
        "UDP" => 17,
        "SCTP" => 132,
        "ICMP" => 1,
        "ICMPV6" => 58,
        _ => {
            return Err(format!(
                "unknown protocol `{proto}`: use TCP, UDP, SCTP, ICMP or ICMPv6"
            ));
        }
    };
    let icmp = matches!(protocol, 1 | 58);
    let port: u16 = port.parse().map_err(|_| {
        format!(
            "`{port}` is not a {}: expected PORT[/PROTOCOL] such as 80, 80/TCP, 53/UDP, 8/ICMP, 128/ICMPv6, or any",
            if icmp { "ICMP type" } else { "port number" }
        )
    })?;
    if icmp && port > 255 {
        return Err(format!("ICMP type {port} is out of range (0-255)"));
    }
    if !icmp && port == 0 {
        return Err("port 0 is not a destination port: use a port number, or any".into());
    }
    Ok(Dport { protocol, port })
}

/// Which flag named a side, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Src,
    Dst,
}

impl Side {
    fn flag(self, what: &str) -> String {
        match self {
            Side::Src => format!("--src-{what}"),
            Side::Dst => format!("--dst-{what}"),
        }
    }
}

/// The policies and the cluster to evaluate, and where they came from.
pub struct Inputs {
    pub set: PolicySet,
    pub state: ClusterState,
    /// `from the given files`, `of the agent on node1 (revision 7)`.
    pub origin: String,
}

impl Inputs {
    /// `--policies` and `--state`.
    pub fn from_files(
        policies: &[PathBuf],
        state: Option<&std::path::Path>,
    ) -> Result<Self, CliError> {
        let (_, set) = files::load(policies).map_err(|e| CliError::runtime(e.to_string()))?;
        let state = match state {
            None => ClusterState::default(),
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(CliError::runtime(format!(
                        "--state {}: not a directory",
                        dir.display()
                    )));
                }
                ClusterState::load_dir(dir).map_err(|e| CliError::runtime(e.to_string()))?
            }
        };
        Ok(Inputs {
            set,
            state,
            origin: "from the given files".into(),
        })
    }

    /// The files the agent last applied.
    pub async fn from_agent(server: &ServerArgs) -> Result<Self, CliError> {
        let res = super::agent::get_policy(server).await?;
        let (set, state) = super::agent::rebuild(&res)?;
        Ok(Inputs {
            set,
            state,
            origin: format!(
                "of the agent on {} (revision {})",
                res.node_name, res.revision
            ),
        })
    }
}

/// A side as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Labels {
        labels: Vec<String>,
        namespace: Option<String>,
    },
    Endpoint(String),
    Ip(IpAddr),
}

impl Target {
    fn to_trace(&self) -> TraceTarget {
        match self {
            Target::Labels { labels, namespace } => TraceTarget::Labels {
                labels: labels.clone(),
                namespace: namespace.clone(),
            },
            Target::Endpoint(name) => TraceTarget::Endpoint(name.clone()),
            Target::Ip(ip) => TraceTarget::Ip(*ip),
        }
    }

    /// Reserved or CIDR labels: the side is no pod.
    fn is_special(labels: &[Label]) -> bool {
        labels
            .iter()
            .any(|l| l.source == source::RESERVED || l.source == source::CIDR)
    }
}

fn target(
    side: Side,
    labels: &[String],
    namespace: &Option<String>,
    endpoint: &Option<String>,
    ip: &Option<IpAddr>,
) -> Result<Target, CliError> {
    if namespace.is_some() && labels.is_empty() {
        // Not clap's `requires`: a conflicting member of the same group
        // (--src-ip) would satisfy it.
        return Err(CliError::usage(format!(
            "{} applies to {}",
            side.flag("namespace"),
            side.flag("labels")
        )));
    }
    if let Some(name) = endpoint {
        if name.is_empty() || name.split('/').count() > 2 || name.split('/').any(str::is_empty) {
            return Err(CliError::usage(format!(
                "invalid {} {name:?}: use NAME or NAMESPACE/NAME",
                side.flag("endpoint")
            )));
        }
        return Ok(Target::Endpoint(name.clone()));
    }
    if let Some(ip) = ip {
        return Ok(Target::Ip(*ip));
    }
    let flag = side.flag("labels");
    let mut parsed = Vec::new();
    for text in labels {
        let label: Label = text
            .parse()
            .map_err(|e| CliError::usage(format!("invalid {flag}: {e}")))?;
        if ![source::K8S, source::RESERVED, source::CIDR].contains(&label.source.as_str()) {
            return Err(CliError::usage(format!(
                "invalid {flag}: label `{text}` has source `{}`: write pod labels as k=v (or k8s:k=v), other identities as reserved:NAME or cidr:PREFIX",
                label.source
            )));
        }
        parsed.push(label);
    }
    if parsed.is_empty() {
        return Err(CliError::usage(format!("{flag} needs at least one label")));
    }
    if Target::is_special(&parsed) && namespace.is_some() {
        return Err(CliError::usage(format!(
            "{} applies to pod labels, not to reserved: or cidr: labels",
            side.flag("namespace")
        )));
    }
    Ok(Target::Labels {
        labels: labels.to_vec(),
        namespace: namespace.clone(),
    })
}

impl TraceArgs {
    /// The source as given.
    pub fn source(&self) -> Result<Target, CliError> {
        target(
            Side::Src,
            &self.src_labels,
            &self.src_namespace,
            &self.src_endpoint,
            &self.src_ip,
        )
    }

    /// The destination as given.
    pub fn destination(&self) -> Result<Target, CliError> {
        target(
            Side::Dst,
            &self.dst_labels,
            &self.dst_namespace,
            &self.dst_endpoint,
            &self.dst_ip,
        )
    }

    pub async fn run(&self) -> Result<(), CliError> {
        let src = self.source()?;
        let dst = self.destination()?;
        let from_files = !self.policies.is_empty();
        if from_files && self.state.is_none() {
            for (side, t) in [(Side::Src, &src), (Side::Dst, &dst)] {
                if matches!(t, Target::Endpoint(_)) {
                    return Err(CliError::usage(format!(
                        "{} needs the cluster state: pass --state DIR with --policies",
                        side.flag("endpoint")
                    )));
                }
            }
        }
        let inputs = if from_files {
            Inputs::from_files(&self.policies, self.state.as_deref())?
        } else {
            Inputs::from_agent(&self.server).await?
        };
        let options = Options {
            local_node: self.node.clone().unwrap_or_default(),
            allow_localhost: self.allow_localhost,
            http_flow_headers: Vec::new(),
        };
        let report = trace(&inputs, &src, &dst, self.dport, &options)?;
        let text = match self.output {
            Format::Text => render_text(&report),
            Format::Json => pretty_json(&report)?,
        };
        print(&text)
    }
}

/// One side of the traced connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SideReport {
    /// `namespace/name` when the side is an endpoint of the cluster state.
    pub endpoint: Option<String>,
    /// The node of that endpoint.
    pub node: Option<String>,
    /// The address traced (an endpoint's first address of the family in use).
    pub address: Option<IpAddr>,
    pub identity: u32,
    pub labels: Vec<String>,
}

/// A policy that decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyReport {
    pub kind: String,
    /// Empty for cluster-wide policies.
    pub namespace: String,
    pub name: String,
}

impl From<&PolicyRef> for PolicyReport {
    fn from(r: &PolicyRef) -> Self {
        PolicyReport {
            kind: r.kind.clone(),
            namespace: r.namespace.clone(),
            name: r.name.clone(),
        }
    }
}

/// Why an enforcement point decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// An allow rule matched (`policies`: every policy with a matching allow).
    AllowRule,
    /// No policy with default deny selects the endpoint in this direction.
    NotEnforced,
    /// Traffic from the host to a local endpoint (`--allow-localhost`).
    AllowLocalhost,
    /// A deny rule matched (`policies`: every policy with a matching deny).
    DenyRule,
    /// Default deny and no rule allows (`policies`: the policies enforcing
    /// the direction).
    DefaultDeny,
}

/// The decision at one enforcement point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionReport {
    /// Default deny is on in this direction.
    pub enforced: bool,
    /// `ALLOWED` or `DENIED`.
    pub verdict: &'static str,
    pub reason: Reason,
    /// `POLICY_DENIED` (133), `POLICY_DENY` (181), or null when allowed.
    pub drop_reason: Option<&'static str>,
    pub drop_reason_code: u8,
    /// The other side's identity as this endpoint's node sees it.
    pub remote_identity: u32,
    pub policies: Vec<PolicyReport>,
}

/// The JSON output of `weir policy trace -o json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceReport {
    pub source: SideReport,
    pub destination: SideReport,
    /// `TCP`, `UDP`, `SCTP`, `ICMP`, `ICMPv6`, or `ANY` for `--dport any`.
    pub protocol: String,
    /// Destination port, the ICMP type for ICMP, 0 for `ANY`.
    pub port: u16,
    /// At the source, when it is an enforcing endpoint (null otherwise).
    pub egress: Option<DecisionReport>,
    /// At the destination, when it is an enforcing endpoint (null otherwise).
    pub ingress: Option<DecisionReport>,
    /// `DENIED` when any enforcement point denies, else `ALLOWED`.
    pub verdict: &'static str,
    /// For the text output only.
    #[serde(skip)]
    pub text: TextContext,
}

/// What the text output says beyond the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextContext {
    pub src_name: String,
    pub dst_name: String,
    pub dport: String,
    pub origin: String,
    pub policies: usize,
    pub endpoints: usize,
    pub local_node: Option<String>,
}

fn verdict_name(v: Verdict) -> &'static str {
    match v {
        Verdict::Allowed => "ALLOWED",
        Verdict::Denied => "DENIED",
    }
}

fn decision_report(d: &Decision) -> DecisionReport {
    let reason = match (d.verdict, d.reason) {
        (Verdict::Denied, DropReason::PolicyDeny) => Reason::DenyRule,
        (Verdict::Denied, _) => Reason::DefaultDeny,
        (Verdict::Allowed, _) if !d.policies.is_empty() => Reason::AllowRule,
        (Verdict::Allowed, _) if !d.enforced => Reason::NotEnforced,
        (Verdict::Allowed, _) => Reason::AllowLocalhost,
    };
    let drop_reason = match d.reason {
        DropReason::None => None,
        DropReason::PolicyDenied => Some("POLICY_DENIED"),
        DropReason::PolicyDeny => Some("POLICY_DENY"),
    };
    DecisionReport {
        enforced: d.enforced,
        verdict: verdict_name(d.verdict),
        reason,
        drop_reason,
        drop_reason_code: d.reason.code(),
        remote_identity: d.remote_identity,
        policies: d.policies.iter().map(PolicyReport::from).collect(),
    }
}

fn side_report(p: &Party, state: &ClusterState) -> SideReport {
    let node = p.endpoint.as_ref().and_then(|e| {
        let (ns, name) = e.split_once('/')?;
        state.endpoint(ns, name).map(|ep| ep.node.clone())
    });
    SideReport {
        endpoint: p.endpoint.clone(),
        node,
        address: p.address,
        identity: p.identity,
        labels: p.labels.clone(),
    }
}

/// How a side is named in the text output.
fn side_name(t: &Target, p: &Party) -> String {
    if let Some(ep) = &p.endpoint {
        return ep.clone();
    }
    match t {
        Target::Labels { labels, namespace } => {
            let parsed: Vec<Label> = labels.iter().filter_map(|l| l.parse().ok()).collect();
            if Target::is_special(&parsed) {
                format!("[{}]", labels.join(","))
            } else {
                format!(
                    "[{}] in namespace {}",
                    labels.join(","),
                    namespace.as_deref().unwrap_or("default")
                )
            }
        }
        Target::Endpoint(name) => name.clone(),
        Target::Ip(ip) => ip.to_string(),
    }
}

/// For ICMP and ICMPv6, traces an endpoint's address of the matching
/// family (the evaluator otherwise takes an endpoint's first address).
fn with_family(state: &ClusterState, t: &Target, other: &Target, dport: Dport) -> TraceTarget {
    let want_v6 = match dport.protocol {
        1 => false,
        58 => true,
        _ => return t.to_trace(),
    };
    let other_ok = match other {
        Target::Ip(ip) => ip.is_ipv6() == want_v6,
        Target::Endpoint(_) => true,
        Target::Labels { .. } => false,
    };
    if let (Target::Endpoint(name), true) = (t, other_ok) {
        let (ns, n) = name.split_once('/').unwrap_or(("default", name));
        if let Some(ip) = state
            .endpoint(ns, n)
            .and_then(|ep| ep.ips.iter().find(|ip| ip.is_ipv6() == want_v6))
        {
            return TraceTarget::Ip(*ip);
        }
    }
    t.to_trace()
}

/// Runs the trace. Unknown endpoints, nodes and bad labels are usage errors.
pub fn trace(
    inputs: &Inputs,
    src: &Target,
    dst: &Target,
    dport: Dport,
    options: &Options,
) -> Result<TraceReport, CliError> {
    let state = &inputs.state;
    if let Some(node) = options.local_node() {
        let known = state.cluster.nodes.iter().any(|n| n.name == node)
            || state.endpoints.iter().any(|e| e.node == node);
        if !known {
            return Err(CliError::usage(format!(
                "--node {node}: no such node in the cluster state"
            )));
        }
    }
    let evaluator = Evaluator::new(state, &inputs.set, options);
    let t = evaluator
        .trace(
            &with_family(state, src, dst, dport),
            &with_family(state, dst, src, dport),
            dport.protocol,
            dport.port,
        )
        .map_err(|e| CliError::usage(e.to_string()))?;
    Ok(TraceReport {
        source: side_report(&t.src, state),
        destination: side_report(&t.dst, state),
        protocol: protocol_name(dport.protocol),
        port: dport.port,
        egress: t.egress.as_ref().map(decision_report),
        ingress: t.ingress.as_ref().map(decision_report),
        verdict: verdict_name(t.verdict()),
        text: TextContext {
            src_name: side_name(src, &t.src),
            dst_name: side_name(dst, &t.dst),
            dport: dport.to_string(),
            origin: inputs.origin.clone(),
            policies: inputs.set.len(),
            endpoints: state.endpoints.len(),
            local_node: options.local_node().map(str::to_owned),
        },
    })
}

fn identity_text(id: u32) -> String {
    match reserved_identity_name(id) {
        Some(name) => format!("{id} ({name})"),
        None => id.to_string(),
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn side_block(out: &mut String, title: &str, s: &SideReport) {
    out.push_str(&format!("{title}:\n"));
    if let Some(ep) = &s.endpoint {
        match &s.node {
            Some(node) => out.push_str(&format!("  Endpoint:  {ep} (node {node})\n")),
            None => out.push_str(&format!("  Endpoint:  {ep}\n")),
        }
    }
    if let Some(ip) = &s.address {
        out.push_str(&format!("  Address:   {ip}\n"));
    }
    out.push_str(&format!("  Identity:  {}\n", identity_text(s.identity)));
    push_list(out, 2, "Labels:    ", &s.labels);
}

fn names(policies: &[PolicyReport]) -> Vec<String> {
    policies
        .iter()
        .map(|p| policy_name(&p.kind, &p.namespace, &p.name))
        .collect()
}

fn decision_block(
    out: &mut String,
    direction: Direction,
    who: &str,
    d: &DecisionReport,
    other: &SideReport,
) {
    let dir = match direction {
        Direction::Ingress => "Ingress",
        Direction::Egress => "Egress",
    };
    out.push_str(&format!("{dir} of {who}:\n"));
    out.push_str(&format!(
        "  Policy enforced:  {}\n",
        if d.enforced { "yes" } else { "no" }
    ));
    let verdict = match d.reason {
        Reason::NotEnforced => format!(
            "{} (default allow: no policy enforces {direction})",
            d.verdict
        ),
        Reason::AllowLocalhost => format!("{} (from the host: allow-localhost)", d.verdict),
        _ => d.verdict.to_owned(),
    };
    out.push_str(&format!("  Verdict:          {verdict}\n"));
    match (d.drop_reason, d.reason) {
        (Some(name), Reason::DenyRule) => out.push_str(&format!(
            "  Drop reason:      {name} ({}): denied by a deny rule\n",
            d.drop_reason_code
        )),
        (Some(name), _) => out.push_str(&format!(
            "  Drop reason:      {name} ({}): no rule allows it (default deny)\n",
            d.drop_reason_code
        )),
        (None, _) => {}
    }
    if d.remote_identity != other.identity {
        out.push_str(&format!(
            "  Remote identity:  {} (as this endpoint's node sees the other side)\n",
            identity_text(d.remote_identity)
        ));
    }
    let label = match d.reason {
        Reason::AllowRule => "Allowed by:       ",
        Reason::DenyRule => "Denied by:        ",
        Reason::DefaultDeny => "Default deny by:  ",
        Reason::NotEnforced | Reason::AllowLocalhost => return,
    };
    push_list(out, 2, label, &names(&d.policies));
}

fn not_evaluated(
    out: &mut String,
    direction: &str,
    who: &str,
    side: &SideReport,
    node: Option<&str>,
) {
    match (&side.endpoint, &side.node, node) {
        (Some(_), Some(ep_node), Some(local)) if ep_node != local => out.push_str(&format!(
            "{direction} of {who}: not enforced on node {local} (the endpoint runs on {ep_node})\n"
        )),
        _ => out.push_str(&format!(
            "{direction} of {who}: not an enforcement point (not an endpoint)\n"
        )),
    }
}

/// The text output, in the spirit of `cilium policy trace`.
pub fn render_text(r: &TraceReport) -> String {
    let c = &r.text;
    let mut out = format!(
        "Tracing From: {} => To: {} Port: {}\n",
        c.src_name, c.dst_name, c.dport
    );
    out.push_str(&format!(
        "Using {} and {} {}.\n",
        count(c.policies, "policy", "policies"),
        count(c.endpoints, "endpoint", "endpoints"),
        c.origin
    ));
    if let Some(node) = &c.local_node {
        out.push_str(&format!(
            "Evaluating as the agent on node {node}: only its endpoints enforce.\n"
        ));
    }
    out.push('\n');
    side_block(&mut out, "Source", &r.source);
    out.push('\n');
    side_block(&mut out, "Destination", &r.destination);
    out.push('\n');
    let local = c.local_node.as_deref();
    match &r.egress {
        Some(d) => decision_block(&mut out, Direction::Egress, &c.src_name, d, &r.destination),
        None => not_evaluated(&mut out, "Egress", &c.src_name, &r.source, local),
    }
    out.push('\n');
    match &r.ingress {
        Some(d) => decision_block(&mut out, Direction::Ingress, &c.dst_name, d, &r.source),
        None => not_evaluated(&mut out, "Ingress", &c.dst_name, &r.destination, local),
    }
    out.push_str(&format!("\nFinal verdict: {}\n", r.verdict));
    clean(&out)
}

#[cfg(test)]
mod tests;
