//! CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy → rule model, with the validation serde
//! cannot do. Problems are collected with their field path; `set` adds file, document and line.

use ipnet::IpNet;

use crate::l7;
use crate::labels::{NAMESPACE_LABELS_PREFIX, POD_NAMESPACE, source};
use crate::model::{
    Entity, ParseNotice, Peer, Peers, PolicyKind, PortMatch, PortRule, PortSpec, Ports, Protocol,
    Rule, Section, Spec,
};
use crate::schema::{
    Authentication, CidrRule, EgressDenyRule, EgressRule, FqdnSelector, Groups, IcmpRule,
    IngressDenyRule, IngressRule, IntOrString, L7Rules, LabelSelector, PortProtocol, RuleSpec,
    Service,
};
use crate::selector::{Operator, Requirement, Selector, SelectorKey};
use crate::yaml::suggest;

/// A validation problem at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub field: String,
    pub message: String,
}

/// Collects problems and notices while translating one document.
pub(crate) struct Ctx {
    pub kind: PolicyKind,
    /// The policy's namespace; empty for cluster-wide policies.
    pub namespace: String,
    pub problems: Vec<Problem>,
    pub notices: Vec<ParseNotice>,
}

impl Ctx {
    pub fn new(kind: PolicyKind, namespace: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            problems: Vec::new(),
            notices: Vec::new(),
        }
    }

    pub fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn notice(&mut self, location: impl Into<String>, message: impl Into<String>) {
        self.notices.push(ParseNotice {
            location: location.into(),
            message: message.into(),
        });
    }
}

/// Translates the specs of a Cilium policy.
pub(crate) fn cilium_specs(
    spec: Option<&RuleSpec>,
    specs: Option<&[RuleSpec]>,
    ctx: &mut Ctx,
) -> Vec<Spec> {
    let mut out = Vec::new();
    if spec.is_none() && specs.is_none_or(|s| s.is_empty()) {
        ctx.error(
            "",
            format!(
                "a {} needs `spec` (or a list of rules in `specs`)",
                ctx.kind
            ),
        );
    }
    if let Some(s) = spec {
        out.push(rule_spec(s, "spec", ctx));
    }
    for (i, s) in specs.unwrap_or_default().iter().enumerate() {
        out.push(rule_spec(s, &format!("specs[{i}]"), ctx));
    }
    out
}

fn rule_spec(spec: &RuleSpec, path: &str, ctx: &mut Ctx) -> Spec {
    let subject = match (&spec.endpoint_selector, &spec.node_selector) {
        (Some(_), Some(_)) => {
            ctx.error(
                path,
                "a rule has either `endpointSelector` or `nodeSelector`, not both",
            );
            None
        }
        (None, None) => {
            ctx.error(
                path,
                "missing field `endpointSelector`: say which endpoints the rule applies to \
                 (`endpointSelector: {}` selects all)",
            );
            None
        }
        (None, Some(_)) => {
            ctx.notice(
                format!("{path}.nodeSelector"),
                "host policies (`nodeSelector`) are not supported: weir enforces policy on pod \
                 endpoints only, so this rule selects nothing",
            );
            None
        }
        (Some(sel), None) => Some(subject_selector(
            sel,
            &format!("{path}.endpointSelector"),
            ctx,
        )),
    };
    let subject_has_init = subject.as_ref().is_some_and(|s| {
        s.requirements
            .iter()
            .any(|r| r.key == SelectorKey::new(source::RESERVED, "init"))
    });
    let dd = spec.enable_default_deny.clone().unwrap_or_default();

    let mut ingress = Section {
        present: spec.ingress.as_ref().is_some_and(|v| !v.is_empty())
            || spec.ingress_deny.as_ref().is_some_and(|v| !v.is_empty()),
        default_deny: dd.ingress.unwrap_or(true),
        rules: Vec::new(),
    };
    let mut egress = Section {
        present: spec.egress.as_ref().is_some_and(|v| !v.is_empty())
            || spec.egress_deny.as_ref().is_some_and(|v| !v.is_empty()),
        default_deny: dd.egress.unwrap_or(true),
        rules: Vec::new(),
    };
    let scope = Scope { subject_has_init };
    for (i, r) in spec.ingress.iter().flatten().enumerate() {
        let p = format!("{path}.ingress[{i}]");
        ingress.rules.push(ingress_rule(r, &p, &scope, ctx));
    }
    for (i, r) in spec.ingress_deny.iter().flatten().enumerate() {
        let p = format!("{path}.ingressDeny[{i}]");
        ingress.rules.push(ingress_deny_rule(r, &p, &scope, ctx));
    }
    for (i, r) in spec.egress.iter().flatten().enumerate() {
        let p = format!("{path}.egress[{i}]");
        egress.rules.push(egress_rule(r, &p, &scope, ctx));
    }
    for (i, r) in spec.egress_deny.iter().flatten().enumerate() {
        let p = format!("{path}.egressDeny[{i}]");
        egress.rules.push(egress_deny_rule(r, &p, &scope, ctx));
    }
    for (i, l) in spec.labels.iter().flatten().enumerate() {
        if l.key.is_empty() {
            ctx.error(
                format!("{path}.labels[{i}].key"),
                "a rule label needs a `key`",
            );
        }
    }
    Spec {
        path: path.to_string(),
        description: spec.description.clone(),
        subject,
        ingress,
        egress,
    }
}

struct Scope {
    subject_has_init: bool,
}

/// The L3 fields of a rule, whatever its direction.
struct L3<'a> {
    dir: &'static str,
    endpoints: Option<&'a Vec<LabelSelector>>,
    requires: Option<&'a Vec<LabelSelector>>,
    cidr: Option<&'a Vec<String>>,
    cidr_set: Option<&'a Vec<CidrRule>>,
    entities: Option<&'a Vec<String>>,
    groups: Option<&'a Vec<Groups>>,
    nodes: Option<&'a Vec<LabelSelector>>,
    services: Option<&'a Vec<Service>>,
    fqdns: Option<&'a Vec<FqdnSelector>>,
}

/// One `toPorts` entry: its ports, its L7 rules and the TLS/listener extras.
type PortRuleView<'a> = (
    Option<&'a Vec<PortProtocol>>,
    Option<&'a L7Rules>,
    PortExtras<'a>,
);

/// The L4 fields of a rule.
struct L4<'a> {
    ports: Vec<PortRuleView<'a>>,
    to_ports_given: bool,
    icmps: Option<&'a Vec<IcmpRule>>,
    authentication: Option<&'a Authentication>,
}

#[derive(Default)]
struct PortExtras<'a> {
    terminating_tls: bool,
    originating_tls: bool,
    server_names: Option<&'a Vec<String>>,
    listener: bool,
}

fn ingress_rule(r: &IngressRule, path: &str, scope: &Scope, ctx: &mut Ctx) -> Rule {
    let l3 = L3 {
        dir: "from",
        endpoints: r.from_endpoints.as_ref(),
        requires: r.from_requires.as_ref(),
        cidr: r.from_cidr.as_ref(),
        cidr_set: r.from_cidr_set.as_ref(),
        entities: r.from_entities.as_ref(),
        groups: r.from_groups.as_ref(),
        nodes: r.from_nodes.as_ref(),
        services: None,
        fqdns: None,
    };
    let l4 = L4 {
        ports: r
            .to_ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.ports.as_ref(),
                    p.rules.as_ref(),
                    PortExtras {
                        terminating_tls: p.terminating_tls.is_some(),
                        originating_tls: p.originating_tls.is_some(),
                        server_names: p.server_names.as_ref(),
                        listener: p.listener.is_some(),
                    },
                )
            })
            .collect(),
        to_ports_given: r.to_ports.is_some(),
        icmps: r.icmps.as_ref(),
        authentication: r.authentication.as_ref(),
    };
    rule(l3, l4, false, true, path, scope, ctx)
}

fn ingress_deny_rule(r: &IngressDenyRule, path: &str, scope: &Scope, ctx: &mut Ctx) -> Rule {
    let l3 = L3 {
        dir: "from",
        endpoints: r.from_endpoints.as_ref(),
        requires: r.from_requires.as_ref(),
        cidr: r.from_cidr.as_ref(),
        cidr_set: r.from_cidr_set.as_ref(),
        entities: r.from_entities.as_ref(),
        groups: r.from_groups.as_ref(),
        nodes: r.from_nodes.as_ref(),
        services: None,
        fqdns: None,
    };
    let l4 = L4 {
        ports: r
            .to_ports
            .iter()
            .flatten()
            .map(|p| (p.ports.as_ref(), None, PortExtras::default()))
            .collect(),
        to_ports_given: r.to_ports.is_some(),
        icmps: r.icmps.as_ref(),
        authentication: None,
    };
    rule(l3, l4, true, true, path, scope, ctx)
}

fn egress_rule(r: &EgressRule, path: &str, scope: &Scope, ctx: &mut Ctx) -> Rule {
    let l3 = L3 {
        dir: "to",
        endpoints: r.to_endpoints.as_ref(),
        requires: r.to_requires.as_ref(),
        cidr: r.to_cidr.as_ref(),
        cidr_set: r.to_cidr_set.as_ref(),
        entities: r.to_entities.as_ref(),
        groups: r.to_groups.as_ref(),
        nodes: r.to_nodes.as_ref(),
        services: r.to_services.as_ref(),
        fqdns: r.to_fqdns.as_ref(),
    };
    let l4 = L4 {
        ports: r
            .to_ports
            .iter()
            .flatten()
            .map(|p| {
                (
                    p.ports.as_ref(),
                    p.rules.as_ref(),
                    PortExtras {
                        terminating_tls: p.terminating_tls.is_some(),
                        originating_tls: p.originating_tls.is_some(),
                        server_names: p.server_names.as_ref(),
                        listener: p.listener.is_some(),
                    },
                )
            })
            .collect(),
        to_ports_given: r.to_ports.is_some(),
        icmps: r.icmps.as_ref(),
        authentication: r.authentication.as_ref(),
    };
    rule(l3, l4, false, false, path, scope, ctx)
}

fn egress_deny_rule(r: &EgressDenyRule, path: &str, scope: &Scope, ctx: &mut Ctx) -> Rule {
    let l3 = L3 {
        dir: "to",
        endpoints: r.to_endpoints.as_ref(),
        requires: r.to_requires.as_ref(),
        cidr: r.to_cidr.as_ref(),
        cidr_set: r.to_cidr_set.as_ref(),
        entities: r.to_entities.as_ref(),
        groups: r.to_groups.as_ref(),
        nodes: r.to_nodes.as_ref(),
        services: r.to_services.as_ref(),
        fqdns: None,
    };
    let l4 = L4 {
        ports: r
            .to_ports
            .iter()
            .flatten()
            .map(|p| (p.ports.as_ref(), None, PortExtras::default()))
            .collect(),
        to_ports_given: r.to_ports.is_some(),
        icmps: r.icmps.as_ref(),
        authentication: None,
    };
    rule(l3, l4, true, false, path, scope, ctx)
}

fn nonempty<T>(v: Option<&Vec<T>>) -> bool {
    v.is_some_and(|v| !v.is_empty())
}

fn rule(
    l3: L3<'_>,
    l4: L4<'_>,
    deny: bool,
    ingress: bool,
    path: &str,
    scope: &Scope,
    ctx: &mut Ctx,
) -> Rule {
    let dir = l3.dir;
    let verb = if deny { "denies" } else { "allows" };
    let f = |name: &str| format!("{path}.{dir}{name}");

    if nonempty(l3.requires) {
        ctx.error(
            f("Requires"),
            format!(
                "`{dir}Requires` is deprecated in Cilium and not supported by weir: add the required \
                 labels to the selectors in `{dir}Endpoints` instead"
            ),
        );
    }

    let has_l3 = nonempty(l3.endpoints)
        || nonempty(l3.cidr)
        || nonempty(l3.cidr_set)
        || nonempty(l3.entities)
        || nonempty(l3.groups)
        || nonempty(l3.nodes)
        || nonempty(l3.services)
        || nonempty(l3.fqdns);
    let mut peers = Vec::new();
    for (i, sel) in l3.endpoints.into_iter().flatten().enumerate() {
        let p = format!("{}[{i}]", f("Endpoints"));
        let s = label_selector(sel, &p, None, ctx);
        peers.push(Peer::Selector(scope_peer(s, scope, ctx)));
    }
    for (i, c) in l3.cidr.into_iter().flatten().enumerate() {
        let p = format!("{}[{i}]", f("CIDR"));
        match parse_cidr(c) {
            Ok(cidr) => peers.push(Peer::Cidr {
                cidr,
                except: Vec::new(),
            }),
            Err(m) => ctx.error(p, m),
        }
    }
    for (i, c) in l3.cidr_set.into_iter().flatten().enumerate() {
        let p = format!("{}[{i}]", f("CIDRSet"));
        if let Some(peer) = cidr_rule(c, &p, ctx) {
            peers.push(peer);
        }
    }
    for (i, e) in l3.entities.into_iter().flatten().enumerate() {
        let p = format!("{}[{i}]", f("Entities"));
        match Entity::parse(e) {
            Some(ent) => peers.push(Peer::Entity(ent)),
            None => {
                let names: Vec<String> = Entity::NAMES.iter().map(|(n, _)| n.to_string()).collect();
                let hint = match suggest(e, &names) {
                    Some(s) => format!(": did you mean `{s}`?"),
                    None => format!(": use one of {}", names.join(", ")),
                };
                ctx.error(p, format!("unknown entity `{e}`{hint}"));
            }
        }
    }
    let unsupported = |ctx: &mut Ctx, field: String, what: &str| {
        ctx.notice(
            field,
            format!("{what} is not supported yet: it selects nothing, so this rule {verb} nothing"),
        );
    };
    if nonempty(l3.groups) {
        peers.push(Peer::Nothing);
        unsupported(
            ctx,
            f("Groups"),
            &format!("`{dir}Groups` (cloud provider groups)"),
        );
    }
    if nonempty(l3.nodes) {
        peers.push(Peer::Nothing);
        unsupported(
            ctx,
            f("Nodes"),
            &format!("`{dir}Nodes` (use the `host` and `remote-node` entities instead)"),
        );
    }
    if let Some(services) = l3.services.filter(|s| !s.is_empty()) {
        for (i, s) in services.iter().enumerate() {
            if s.k8s_service.is_none() && s.k8s_service_selector.is_none() {
                ctx.error(
                    format!("{path}.toServices[{i}]"),
                    "a service needs `k8sService` or `k8sServiceSelector`",
                );
            }
        }
        peers.push(Peer::Nothing);
        unsupported(ctx, format!("{path}.toServices"), "`toServices`");
    }
    if let Some(fqdns) = l3.fqdns.filter(|s| !s.is_empty()) {
        for (i, s) in fqdns.iter().enumerate() {
            l7::fqdn_selector(s, &format!("{path}.toFQDNs[{i}]"), ctx);
        }
        peers.push(Peer::Nothing);
        ctx.notice(
            format!("{path}.toFQDNs"),
            "toFQDNs selects no addresses yet (DNS-based policy is not implemented): this rule \
             allows nothing",
        );
    }

    // L4.
    let has_ports = l4.to_ports_given && !l4.ports.is_empty();
    let has_icmps = nonempty(l4.icmps);
    if has_ports && has_icmps {
        ctx.error(
            path,
            "`icmps` cannot be combined with `toPorts` in one rule: write two rules",
        );
    }
    let mut ports = Vec::new();
    let mut port_rules = Vec::new();
    for (i, (pps, rules, extras)) in l4.ports.iter().enumerate() {
        let p = format!("{path}.toPorts[{i}]");
        let mut these = Vec::new();
        match pps {
            Some(list) if !list.is_empty() => {
                for (j, pp) in list.iter().enumerate() {
                    let pf = format!("{p}.ports[{j}]");
                    if let Some(spec) = port_protocol(
                        pp.port.as_ref(),
                        pp.end_port,
                        pp.protocol.as_deref(),
                        Protocol::Any,
                        true,
                        &pf,
                        ctx,
                    ) {
                        these.push(spec);
                    }
                }
            }
            _ => ctx.error(
                format!("{p}.ports"),
                "`ports` is empty: list at least one port (`port: \"0\"` means every port)",
            ),
        }
        let mut http = None;
        if let Some(r) = rules
            && let Some(what) = l7::validate(r, &these, ingress, &format!("{p}.rules"), ctx)
        {
            if what.field == "http" {
                http = Some(what.http).filter(|h| !h.is_empty());
            } else {
                let plural = these.len() > 1;
                let list: Vec<String> = these.iter().map(|s| s.to_string()).collect();
                ctx.notice(
                    format!("{p}.rules.{}", what.field),
                    format!(
                        "{} rules on {} {} are not enforced yet: the {} allowed at L4",
                        what.name,
                        if plural { "ports" } else { "port" },
                        list.join(", "),
                        if plural { "ports are" } else { "port is" },
                    ),
                );
            }
        }
        port_rules.push(PortRule {
            ports: these.clone(),
            http,
        });
        for (flag, name) in [
            (extras.terminating_tls, "terminatingTLS"),
            (extras.originating_tls, "originatingTLS"),
            (extras.listener, "listener"),
        ] {
            if flag {
                ctx.notice(
                    format!("{p}.{name}"),
                    format!(
                        "`{name}` is not supported yet: the ports are allowed at L4 without it"
                    ),
                );
            }
        }
        if let Some(names) = extras.server_names.filter(|n| !n.is_empty()) {
            for (k, n) in names.iter().enumerate() {
                if n.is_empty() {
                    ctx.error(format!("{p}.serverNames[{k}]"), "a server name is empty");
                }
            }
            ctx.notice(
                format!("{p}.serverNames"),
                "`serverNames` (TLS SNI) is not enforced yet: the ports are allowed at L4",
            );
        }
        ports.extend(these);
    }
    for (i, icmp) in l4.icmps.into_iter().flatten().enumerate() {
        let p = format!("{path}.icmps[{i}]");
        match icmp.fields.as_ref().filter(|f| !f.is_empty()) {
            None => ctx.error(format!("{p}.fields"), "`fields` is empty: list ICMP types"),
            Some(fields) => {
                for (j, field) in fields.iter().enumerate() {
                    if let Some(spec) = icmp_field(
                        field.family.as_deref(),
                        &field.icmp_type,
                        &format!("{p}.fields[{j}]"),
                        ctx,
                    ) {
                        ports.push(spec);
                    }
                }
            }
        }
    }
    if let Some(auth) = l4.authentication {
        match auth.mode.as_str() {
            "disabled" => {}
            "required" | "test-always-fail" => ctx.notice(
                format!("{path}.authentication"),
                format!(
                    "authentication mode `{}` is not enforced yet: the rule allows its traffic \
                     without mutual authentication",
                    auth.mode
                ),
            ),
            other => ctx.error(
                format!("{path}.authentication.mode"),
                format!("unknown authentication mode `{other}`: use `disabled` or `required`"),
            ),
        }
    }

    let has_l4 = has_ports || has_icmps;
    let peers = if has_l3 {
        Peers::List(peers)
    } else if has_l4 {
        Peers::All
    } else {
        // An empty rule (`- {}`) selects nothing; it only puts the endpoint into default deny.
        Peers::List(Vec::new())
    };
    let ports = if has_l4 {
        Ports::List(ports)
    } else {
        Ports::All
    };
    if !has_ports {
        port_rules.clear();
    }
    Rule {
        path: path.to_string(),
        deny,
        peers,
        ports,
        port_rules,
    }
}

/// `cidr` (+ `except`) of a CIDR set.
fn cidr_rule(c: &CidrRule, path: &str, ctx: &mut Ctx) -> Option<Peer> {
    if c.cidr_group_ref.is_some() || c.cidr_group_selector.is_some() {
        let field = if c.cidr_group_ref.is_some() {
            "cidrGroupRef"
        } else {
            "cidrGroupSelector"
        };
        ctx.error(
            format!("{path}.{field}"),
            format!(
                "`{field}` is not supported: weir has no CiliumCIDRGroup objects; list the prefix in \
                 `cidr` instead"
            ),
        );
        return None;
    }
    let Some(text) = &c.cidr else {
        ctx.error(path, "missing field `cidr`");
        return None;
    };
    let cidr = match parse_cidr(text) {
        Ok(c) => c,
        Err(m) => {
            ctx.error(format!("{path}.cidr"), m);
            return None;
        }
    };
    let mut except = Vec::new();
    for (i, e) in c.except.iter().flatten().enumerate() {
        let p = format!("{path}.except[{i}]");
        match parse_cidr(e) {
            Ok(net) if cidr.contains(&net) => except.push(net),
            Ok(net) => ctx.error(p, format!("except `{net}` is not inside `{cidr}`")),
            Err(m) => ctx.error(p, m),
        }
    }
    Some(Peer::Cidr { cidr, except })
}

/// A prefix (`10.0.0.0/8`) or a single address; host bits are cleared.
pub(crate) fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    if let Ok(ip) = t.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    Err(format!(
        "`{text}` is not a CIDR prefix: write an address with a prefix length, e.g. `10.0.0.0/8`"
    ))
}

/// A label selector; `key_source` prefixes every key (NetworkPolicy keys are `k8s` labels),
/// otherwise each key may carry its own source.
pub(crate) fn label_selector(
    sel: &LabelSelector,
    path: &str,
    key_source: Option<&str>,
    ctx: &mut Ctx,
) -> Selector {
    let key = |k: &str| match key_source {
        Some(src) => SelectorKey::new(src, k),
        None => SelectorKey::parse(k),
    };
    let mut out = Selector::all();
    for (k, v) in sel.match_labels.iter().flatten() {
        if k.is_empty() {
            ctx.error(format!("{path}.matchLabels"), "a label key is empty");
            continue;
        }
        out.push(Requirement::equals(key(k), v));
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let operator = match e.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                let ops = ["In", "NotIn", "Exists", "DoesNotExist"].map(String::from);
                let hint = match suggest(other, &ops) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => "use In, NotIn, Exists or DoesNotExist".to_string(),
                };
                ctx.error(
                    format!("{p}.operator"),
                    format!("unknown operator `{other}`: {hint}"),
                );
                continue;
            }
        };
        let values: Vec<String> = e.values.clone().unwrap_or_default();
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                ctx.error(
                    format!("{p}.values"),
                    format!("operator `{}` needs at least one value", e.operator),
                );
                continue;
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                ctx.error(
                    format!("{p}.values"),
                    format!("operator `{}` takes no values: remove `values`", e.operator),
                );
                continue;
            }
            _ => {}
        }
        if e.key.is_empty() {
            ctx.error(format!("{p}.key"), "the key is empty");
            continue;
        }
        out.push(Requirement {
            key: key(&e.key),
            operator,
            values: values.into_iter().collect(),
        });
    }
    out
}

/// The subject of a namespaced policy is always limited to the policy's namespace.
fn subject_selector(sel: &LabelSelector, path: &str, ctx: &mut Ctx) -> Selector {
    let mut s = label_selector(sel, path, None, ctx);
    if ctx.namespace.is_empty() {
        return s;
    }
    let ns = ctx.namespace.clone();
    for (k, v) in sel.match_labels.iter().flatten() {
        let key = SelectorKey::parse(k);
        if key.key == POD_NAMESPACE
            && (key.source == source::K8S || key.source == source::ANY)
            && *v != ns
        {
            ctx.error(
                format!("{path}.matchLabels"),
                format!(
                    "the endpointSelector of a {} in namespace `{ns}` selects only endpoints of `{ns}`, \
                     but it names namespace `{v}`: move the policy to namespace `{v}` or use a \
                     CiliumClusterwideNetworkPolicy",
                    ctx.kind
                ),
            );
        }
    }
    s.push(Requirement::equals(
        SelectorKey::new(source::K8S, POD_NAMESPACE),
        &ns,
    ));
    s
}

/// Cilium's namespace scoping of `fromEndpoints`/`toEndpoints` selectors.
fn scope_peer(mut s: Selector, scope: &Scope, ctx: &Ctx) -> Selector {
    if s.has_source(source::RESERVED) || s.has_key(source::K8S, POD_NAMESPACE) {
        return s;
    }
    let pod_ns = SelectorKey::new(source::K8S, POD_NAMESPACE);
    if ctx.namespace.is_empty() {
        if !scope.subject_has_init {
            s.push(Requirement::exists(pod_ns));
        }
    } else if !s.has_key_prefix(source::K8S, NAMESPACE_LABELS_PREFIX) {
        s.push(Requirement::equals(pod_ns, &ctx.namespace));
    }
    s
}

/// One port entry; `allow_any` is false for NetworkPolicy (TCP, UDP or SCTP only).
pub(crate) fn port_protocol(
    port: Option<&IntOrString>,
    end_port: Option<i64>,
    protocol: Option<&str>,
    default: Protocol,
    allow_any: bool,
    path: &str,
    ctx: &mut Ctx,
) -> Option<PortSpec> {
    let protocol = match protocol {
        None => default,
        Some(p) => match Protocol::parse_l4(p) {
            Some(Protocol::Any) if !allow_any => {
                ctx.error(
                    format!("{path}.protocol"),
                    "protocol `ANY` is not valid in a NetworkPolicy: use TCP, UDP or SCTP",
                );
                return None;
            }
            Some(proto) => proto,
            None => {
                let hint = if p.eq_ignore_ascii_case("icmp") || p.eq_ignore_ascii_case("icmpv6") {
                    "use an `icmps` rule for ICMP".to_string()
                } else if allow_any {
                    "use TCP, UDP, SCTP or ANY".to_string()
                } else {
                    "use TCP, UDP or SCTP".to_string()
                };
                ctx.error(
                    format!("{path}.protocol"),
                    format!("unknown protocol `{p}`: {hint}"),
                );
                return None;
            }
        },
    };
    let text = port.map(|p| p.0.trim().to_string()).unwrap_or_default();
    let port_match = if text.is_empty() {
        PortMatch::All
    } else if text.chars().all(|c| c.is_ascii_digit()) {
        match text.parse::<u32>() {
            Ok(0) => PortMatch::All,
            Ok(n) if n <= 65535 => PortMatch::Range(n as u16, n as u16),
            _ => {
                ctx.error(
                    format!("{path}.port"),
                    format!("port `{text}` is out of range: use 1-65535 (or 0 for every port)"),
                );
                return None;
            }
        }
    } else if is_port_name(&text) {
        PortMatch::Named(text.to_ascii_lowercase())
    } else {
        ctx.error(
            format!("{path}.port"),
            format!(
                "`{text}` is neither a port number nor a port name (names are 1-15 characters of \
                 a-z, 0-9 and `-`, with at least one letter)"
            ),
        );
        return None;
    };
    let port_match = match (end_port, &port_match) {
        (None, _) => port_match,
        (Some(end), PortMatch::Range(first, _)) => {
            if end < i64::from(*first) || end > 65535 {
                ctx.error(
                    format!("{path}.endPort"),
                    format!("endPort {end} must be between port {first} and 65535"),
                );
                return None;
            }
            PortMatch::Range(*first, end as u16)
        }
        (Some(_), _) => {
            ctx.error(
                format!("{path}.endPort"),
                "`endPort` needs a numeric, non-zero `port` to start the range",
            );
            return None;
        }
    };
    Some(PortSpec {
        protocol,
        port: port_match,
    })
}

/// An IANA service name as Kubernetes accepts it for container ports.
fn is_port_name(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    !lower.is_empty()
        && lower.len() <= 15
        && lower
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && lower.chars().any(|c| c.is_ascii_lowercase())
        && !lower.starts_with('-')
        && !lower.ends_with('-')
        && !lower.contains("--")
}

const ICMPV4_TYPES: &[(&str, u8)] = &[
    ("EchoReply", 0),
    ("DestinationUnreachable", 3),
    ("Redirect", 5),
    ("Echo", 8),
    ("EchoRequest", 8),
    ("RouterAdvertisement", 9),
    ("RouterSelection", 10),
    ("TimeExceeded", 11),
    ("ParameterProblem", 12),
    ("Timestamp", 13),
    ("TimestampReply", 14),
    ("Photuris", 40),
    ("ExtendedEchoRequest", 42),
    ("ExtendedEchoReply", 43),
];

const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("DestinationUnreachable", 1),
    ("PacketTooBig", 2),
    ("TimeExceeded", 3),
    ("ParameterProblem", 4),
    ("EchoRequest", 128),
    ("EchoReply", 129),
    ("MulticastListenerQuery", 130),
    ("MulticastListenerReport", 131),
    ("MulticastListenerDone", 132),
    ("RouterSolicitation", 133),
    ("RouterAdvertisement", 134),
    ("NeighborSolicitation", 135),
    ("NeighborAdvertisement", 136),
    ("RedirectMessage", 137),
    ("RouterRenumbering", 138),
    ("ICMPNodeInformationQuery", 139),
    ("ICMPNodeInformationResponse", 140),
    ("InverseNeighborDiscoverySolicitation", 141),
    ("InverseNeighborDiscoveryAdvertisement", 142),
    ("HomeAgentAddressDiscoveryRequest", 144),
    ("HomeAgentAddressDiscoveryReply", 145),
    ("MobilePrefixSolicitation", 146),
    ("MobilePrefixAdvertisement", 147),
    ("DuplicateAddressRequestCodeSuffix", 157),
    ("DuplicateAddressConfirmationCodeSuffix", 158),
    ("ExtendedEchoRequest", 160),
    ("ExtendedEchoReply", 161),
];

fn icmp_field(
    family: Option<&str>,
    icmp_type: &IntOrString,
    path: &str,
    ctx: &mut Ctx,
) -> Option<PortSpec> {
    let (protocol, names, fam) = match family {
        None | Some("IPv4") => (Protocol::Icmp, ICMPV4_TYPES, "IPv4"),
        Some("IPv6") => (Protocol::Icmpv6, ICMPV6_TYPES, "IPv6"),
        Some(other) => {
            ctx.error(
                format!("{path}.family"),
                format!("unknown family `{other}`: use `IPv4` or `IPv6`"),
            );
            return None;
        }
    };
    let t = icmp_type.0.trim();
    let number = if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        match t.parse::<u8>() {
            Ok(n) => n,
            Err(_) => {
                ctx.error(
                    format!("{path}.type"),
                    format!("ICMP type `{t}` is out of range 0-255"),
                );
                return None;
            }
        }
    } else if let Some((_, n)) = names.iter().find(|(name, _)| *name == t) {
        *n
    } else {
        let all: Vec<String> = names.iter().map(|(n, _)| n.to_string()).collect();
        let hint = match suggest(t, &all) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("use a number 0-255 or one of {}", all.join(", ")),
        };
        ctx.error(
            format!("{path}.type"),
            format!("`{t}` is not an {fam} ICMP type: {hint}"),
        );
        return None;
    };
    Some(PortSpec {
        protocol,
        port: PortMatch::Range(u16::from(number), u16::from(number)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(parse_cidr("fd00::1").unwrap().to_string(), "fd00::1/128");
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }

    #[test]
    fn ports() {
        let mut ctx = Ctx::new(PolicyKind::CiliumNetworkPolicy, "default");
        let p = |v: &str| Some(IntOrString(v.to_string()));
        let spec = port_protocol(
            p("80").as_ref(),
            Some(90),
            Some("tcp"),
            Protocol::Any,
            true,
            "x",
            &mut ctx,
        )
        .unwrap();
        assert_eq!(spec.to_string(), "80-90/TCP");
        let spec = port_protocol(
            p("HTTP").as_ref(),
            None,
            None,
            Protocol::Any,
            true,
            "x",
            &mut ctx,
        )
        .unwrap();
        assert_eq!(spec.port, PortMatch::Named("http".into()));
        let spec =
            port_protocol(None, None, Some("UDP"), Protocol::Any, true, "x", &mut ctx).unwrap();
        assert_eq!(spec.to_string(), "all/UDP");
        assert!(ctx.problems.is_empty());
        assert!(
            port_protocol(
                p("80").as_ref(),
                Some(79),
                None,
                Protocol::Any,
                true,
                "x",
                &mut ctx
            )
            .is_none()
        );
        assert!(
            port_protocol(
                p("http").as_ref(),
                Some(79),
                None,
                Protocol::Any,
                true,
                "x",
                &mut ctx
            )
            .is_none()
        );
        assert!(
            port_protocol(
                p("70000").as_ref(),
                None,
                None,
                Protocol::Any,
                true,
                "x",
                &mut ctx
            )
            .is_none()
        );
        assert!(
            port_protocol(
                p("80").as_ref(),
                None,
                Some("ICMP"),
                Protocol::Any,
                true,
                "x",
                &mut ctx
            )
            .is_none()
        );
        let messages: Vec<String> = ctx
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        assert_eq!(
            messages,
            vec![
                "x.endPort: endPort 79 must be between port 80 and 65535",
                "x.endPort: `endPort` needs a numeric, non-zero `port` to start the range",
                "x.port: port `70000` is out of range: use 1-65535 (or 0 for every port)",
                "x.protocol: unknown protocol `ICMP`: use an `icmps` rule for ICMP",
            ]
        );
    }

    #[test]
    fn icmp_names() {
        let mut ctx = Ctx::new(PolicyKind::CiliumNetworkPolicy, "default");
        let t = |s: &str| IntOrString(s.to_string());
        assert_eq!(
            icmp_field(None, &t("EchoRequest"), "x", &mut ctx)
                .unwrap()
                .to_string(),
            "8/ICMP"
        );
        assert_eq!(
            icmp_field(Some("IPv6"), &t("EchoRequest"), "x", &mut ctx)
                .unwrap()
                .to_string(),
            "128/ICMPv6"
        );
        assert!(icmp_field(Some("IPv6"), &t("Echo"), "x", &mut ctx).is_none());
        assert_eq!(
            ctx.problems[0].message,
            "`Echo` is not an IPv6 ICMP type: did you mean `EchoRequest`?"
        );
    }
}
