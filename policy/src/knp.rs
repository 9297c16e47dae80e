//! Kubernetes NetworkPolicy → rule model, the way Cilium translates it: label keys are `k8s`
//! labels, `namespaceSelector` matches the `io.cilium.k8s.namespace.labels.*` labels, `ipBlock`
//! is a CIDR rule (it never selects pods or nodes), missing `from`/`to` means every peer and
//! missing `ports` means every port.

use crate::labels::{NAMESPACE_LABELS_PREFIX, POD_NAMESPACE, source};
use crate::model::{Peer, Peers, Ports, Protocol, Rule, Section, Spec};
use crate::schema::{NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec};
use crate::selector::{Requirement, SelectorKey};
use crate::translate::{Ctx, label_selector, parse_cidr, port_protocol};

pub(crate) fn network_policy_spec(spec: Option<&NetworkPolicySpec>, ctx: &mut Ctx) -> Vec<Spec> {
    let Some(spec) = spec else {
        ctx.error("", "a NetworkPolicy needs `spec`");
        return Vec::new();
    };
    let ns = ctx.namespace.clone();
    let subject = match &spec.pod_selector {
        Some(sel) => {
            let mut s = label_selector(sel, "spec.podSelector", Some(source::K8S), ctx);
            s.push(Requirement::equals(
                SelectorKey::new(source::K8S, POD_NAMESPACE),
                &ns,
            ));
            Some(s)
        }
        None => {
            ctx.error(
                "spec",
                "missing field `podSelector`: say which pods the policy applies to (`podSelector: {}` selects all pods of the namespace)",
            );
            None
        }
    };
    let has_egress = spec.egress.as_ref().is_some_and(|e| !e.is_empty());
    let (mut ingress_on, mut egress_on) = (true, has_egress);
    if let Some(types) = &spec.policy_types {
        ingress_on = false;
        egress_on = false;
        for (i, t) in types.iter().enumerate() {
            match t.as_str() {
                "Ingress" => ingress_on = true,
                "Egress" => egress_on = true,
                other => ctx.error(
                    format!("spec.policyTypes[{i}]"),
                    format!("unknown policy type `{other}`: use `Ingress` or `Egress`"),
                ),
            }
        }
        if !ingress_on && spec.ingress.as_ref().is_some_and(|v| !v.is_empty()) {
            ctx.notice(
                "spec.ingress",
                "these ingress rules have no effect: `policyTypes` does not list `Ingress`",
            );
        }
        if !egress_on && has_egress {
            ctx.notice(
                "spec.egress",
                "these egress rules have no effect: `policyTypes` does not list `Egress`",
            );
        }
    }
    let mut ingress = Section {
        present: ingress_on,
        default_deny: true,
        rules: Vec::new(),
    };
    let mut egress = Section {
        present: egress_on,
        default_deny: true,
        rules: Vec::new(),
    };
    if ingress_on {
        for (i, r) in spec.ingress.iter().flatten().enumerate() {
            let p = format!("spec.ingress[{i}]");
            let peers = peers(r.from.as_deref(), &format!("{p}.from"), ctx);
            let ports = ports(r.ports.as_deref(), &format!("{p}.ports"), ctx);
            ingress.rules.push(Rule {
                path: p,
                deny: false,
                peers,
                ports,
                port_rules: Vec::new(),
            });
        }
    }
    if egress_on {
        for (i, r) in spec.egress.iter().flatten().enumerate() {
            let p = format!("spec.egress[{i}]");
            let peers = peers(r.to.as_deref(), &format!("{p}.to"), ctx);
            let ports = ports(r.ports.as_deref(), &format!("{p}.ports"), ctx);
            egress.rules.push(Rule {
                path: p,
                deny: false,
                peers,
                ports,
                port_rules: Vec::new(),
            });
        }
    }
    vec![Spec {
        path: "spec".to_string(),
        description: None,
        subject,
        ingress,
        egress,
    }]
}

fn peers(list: Option<&[NetworkPolicyPeer]>, path: &str, ctx: &mut Ctx) -> Peers {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Peers::All;
    };
    let mut out = Vec::new();
    for (i, peer) in list.iter().enumerate() {
        let p = format!("{path}[{i}]");
        if let Some(block) = &peer.ip_block {
            if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
                ctx.error(
                    &p,
                    "`ipBlock` cannot be combined with `podSelector` or `namespaceSelector`: use two peers",
                );
                continue;
            }
            let cidr = match parse_cidr(&block.cidr) {
                Ok(c) => c,
                Err(m) => {
                    ctx.error(format!("{p}.ipBlock.cidr"), m);
                    continue;
                }
            };
            let mut except = Vec::new();
            for (j, e) in block.except.iter().flatten().enumerate() {
                let ep = format!("{p}.ipBlock.except[{j}]");
                match parse_cidr(e) {
                    Ok(net) if cidr.contains(&net) => except.push(net),
                    Ok(net) => ctx.error(ep, format!("except `{net}` is not inside `{cidr}`")),
                    Err(m) => ctx.error(ep, m),
                }
            }
            out.push(Peer::Cidr { cidr, except });
            continue;
        }
        let pod_ns = SelectorKey::new(source::K8S, POD_NAMESPACE);
        let mut sel = match &peer.pod_selector {
            Some(ps) => label_selector(ps, &format!("{p}.podSelector"), Some(source::K8S), ctx),
            None => crate::selector::Selector::all(),
        };
        match &peer.namespace_selector {
            Some(nss) => {
                let ns_sel = label_selector(
                    nss,
                    &format!("{p}.namespaceSelector"),
                    Some(source::K8S),
                    ctx,
                );
                for mut r in ns_sel.requirements {
                    r.key.key = format!("{NAMESPACE_LABELS_PREFIX}{}", r.key.key);
                    sel.push(r);
                }
                sel.push(Requirement::exists(pod_ns));
            }
            None if peer.pod_selector.is_some() => {
                sel.push(Requirement::equals(pod_ns, &ctx.namespace));
            }
            None => {
                ctx.error(
                    &p,
                    "a peer needs `podSelector`, `namespaceSelector` or `ipBlock`",
                );
                continue;
            }
        }
        out.push(Peer::Selector(sel));
    }
    Peers::List(out)
}

fn ports(list: Option<&[NetworkPolicyPort]>, path: &str, ctx: &mut Ctx) -> Ports {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ports::All;
    };
    let mut out = Vec::new();
    for (i, port) in list.iter().enumerate() {
        if let Some(spec) = port_protocol(
            port.port.as_ref(),
            port.end_port,
            port.protocol.as_deref(),
            Protocol::Tcp,
            false,
            &format!("{path}[{i}]"),
            ctx,
        ) {
            out.push(spec);
        }
    }
    Ports::List(out)
}
