//! `GetFlowsRequest.field_mask`: return only the requested fields of each flow. Paths name
//! top-level fields by their proto names (`"source"`, `"IP"`, `"Summary"`), optionally one level
//! down (`"source.identity"`, `"l4.TCP"`); deeper paths keep the whole second-level field.

use std::collections::BTreeMap;

use weir_proto::flow::{Endpoint, Flow, Ip};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldMask {
    /// top-level field → second-level fields (empty set = the whole field).
    paths: BTreeMap<String, Vec<String>>,
}

const TOP_LEVEL: &[&str] = &[
    "time",
    "uuid",
    "emitter",
    "verdict",
    "drop_reason",
    "auth_type",
    "ethernet",
    "IP",
    "l4",
    "tunnel",
    "source",
    "destination",
    "Type",
    "node_name",
    "node_labels",
    "source_names",
    "destination_names",
    "l7",
    "reply",
    "event_type",
    "source_service",
    "destination_service",
    "traffic_direction",
    "policy_match_type",
    "trace_observation_point",
    "trace_reason",
    "file",
    "ip_trace_id",
    "drop_reason_desc",
    "is_reply",
    "debug_capture_point",
    "interface",
    "proxy_port",
    "trace_context",
    "sock_xlate_point",
    "socket_cookie",
    "cgroup_id",
    "Summary",
    "extensions",
    "egress_allowed_by",
    "ingress_allowed_by",
    "egress_denied_by",
    "ingress_denied_by",
    "policy_log",
    "aggregate",
];
const ENDPOINT_FIELDS: &[&str] = &[
    "ID",
    "identity",
    "cluster_name",
    "namespace",
    "labels",
    "pod_name",
    "workloads",
];
const IP_FIELDS: &[&str] = &[
    "source",
    "source_xlated",
    "destination",
    "ipVersion",
    "encrypted",
];

impl FieldMask {
    /// Validates the paths; an empty list means "every field".
    pub fn new(paths: &[String]) -> Result<FieldMask, String> {
        let mut mask = FieldMask::default();
        for path in paths {
            let mut parts = path.splitn(2, '.');
            let top = parts.next().unwrap_or_default();
            if !TOP_LEVEL.contains(&top) {
                return Err(format!(
                    "invalid field mask path `{path}`: flow has no field `{top}`"
                ));
            }
            let subs = mask.paths.entry(top.to_string()).or_default();
            if let Some(rest) = parts.next() {
                let sub = rest.split('.').next().unwrap_or_default();
                let known: Option<&[&str]> = match top {
                    "source" | "destination" => Some(ENDPOINT_FIELDS),
                    "IP" => Some(IP_FIELDS),
                    _ => None,
                };
                if let Some(known) = known
                    && !known.contains(&sub)
                {
                    return Err(format!(
                        "invalid field mask path `{path}`: `{top}` has no field `{sub}`"
                    ));
                }
                subs.push(sub.to_string());
            } else {
                subs.clear();
                subs.push(String::new());
            }
        }
        Ok(mask)
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    fn keep(&self, field: &str) -> Option<&[String]> {
        self.paths.get(field).map(Vec::as_slice)
    }

    /// The flow with only the masked fields set.
    pub fn apply(&self, f: Flow) -> Flow {
        if self.is_empty() {
            return f;
        }
        let mut out = Flow::default();
        macro_rules! take {
            ($($name:literal => $field:ident),* $(,)?) => {
                $(if self.keep($name).is_some() { out.$field = f.$field; })*
            };
        }
        take!(
            "time" => time, "uuid" => uuid, "emitter" => emitter, "verdict" => verdict,
            "drop_reason" => drop_reason, "auth_type" => auth_type, "ethernet" => ethernet,
            "l4" => l4, "tunnel" => tunnel, "Type" => r#type, "node_name" => node_name,
            "node_labels" => node_labels, "source_names" => source_names,
            "destination_names" => destination_names, "l7" => l7, "reply" => reply,
            "event_type" => event_type, "source_service" => source_service,
            "destination_service" => destination_service, "traffic_direction" => traffic_direction,
            "policy_match_type" => policy_match_type, "trace_observation_point" => trace_observation_point,
            "trace_reason" => trace_reason, "file" => file, "ip_trace_id" => ip_trace_id,
            "drop_reason_desc" => drop_reason_desc, "is_reply" => is_reply,
            "debug_capture_point" => debug_capture_point, "interface" => interface,
            "proxy_port" => proxy_port, "trace_context" => trace_context,
            "sock_xlate_point" => sock_xlate_point, "socket_cookie" => socket_cookie,
            "cgroup_id" => cgroup_id, "Summary" => summary, "extensions" => extensions,
            "egress_allowed_by" => egress_allowed_by, "ingress_allowed_by" => ingress_allowed_by,
            "egress_denied_by" => egress_denied_by, "ingress_denied_by" => ingress_denied_by,
            "policy_log" => policy_log, "aggregate" => aggregate,
        );
        if let Some(subs) = self.keep("source") {
            out.source = f.source.map(|e| mask_endpoint(e, subs));
        }
        if let Some(subs) = self.keep("destination") {
            out.destination = f.destination.map(|e| mask_endpoint(e, subs));
        }
        if let Some(subs) = self.keep("IP") {
            out.ip = f.ip.map(|ip| mask_ip(ip, subs));
        }
        out
    }
}

fn whole(subs: &[String]) -> bool {
    subs.iter().any(String::is_empty)
}

fn mask_endpoint(e: Endpoint, subs: &[String]) -> Endpoint {
    if whole(subs) {
        return e;
    }
    let has = |n: &str| subs.iter().any(|s| s == n);
    Endpoint {
        id: if has("ID") { e.id } else { 0 },
        identity: if has("identity") { e.identity } else { 0 },
        cluster_name: if has("cluster_name") {
            e.cluster_name
        } else {
            String::new()
        },
        namespace: if has("namespace") {
            e.namespace
        } else {
            String::new()
        },
        labels: if has("labels") { e.labels } else { Vec::new() },
        pod_name: if has("pod_name") {
            e.pod_name
        } else {
            String::new()
        },
        workloads: if has("workloads") {
            e.workloads
        } else {
            Vec::new()
        },
    }
}

fn mask_ip(ip: Ip, subs: &[String]) -> Ip {
    if whole(subs) {
        return ip;
    }
    let has = |n: &str| subs.iter().any(|s| s == n);
    Ip {
        source: if has("source") {
            ip.source
        } else {
            String::new()
        },
        source_xlated: if has("source_xlated") {
            ip.source_xlated
        } else {
            String::new()
        },
        destination: if has("destination") {
            ip.destination
        } else {
            String::new()
        },
        ip_version: if has("ipVersion") { ip.ip_version } else { 0 },
        encrypted: has("encrypted") && ip.encrypted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_requested_fields() {
        let mask =
            FieldMask::new(&["source.identity".into(), "Summary".into(), "IP".into()]).unwrap();
        let f = Flow {
            summary: "TCP Flags: SYN".into(),
            node_name: "n1".into(),
            source: Some(Endpoint {
                identity: 5,
                pod_name: "a".into(),
                ..Default::default()
            }),
            ip: Some(Ip {
                source: "10.0.0.1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let m = mask.apply(f);
        assert_eq!(m.summary, "TCP Flags: SYN");
        assert_eq!(m.node_name, "");
        assert_eq!(
            m.source.as_ref().map(|s| (s.identity, s.pod_name.as_str())),
            Some((5, ""))
        );
        assert_eq!(m.ip.map(|ip| ip.source), Some("10.0.0.1".to_string()));
    }

    #[test]
    fn rejects_unknown_paths_naming_them() {
        assert_eq!(
            FieldMask::new(&["sauce".into()]).unwrap_err(),
            "invalid field mask path `sauce`: flow has no field `sauce`"
        );
        assert_eq!(
            FieldMask::new(&["source.podname".into()]).unwrap_err(),
            "invalid field mask path `source.podname`: `source` has no field `podname`"
        );
    }
}
