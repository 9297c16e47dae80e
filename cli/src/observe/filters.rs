//! Turning filter flags into the whitelist and blacklist of a
//! `GetFlowsRequest`, with Hubble's rules:
//!
//! - Flags go to the whitelist, except the one right after `--not`, which
//!   goes to the blacklist. Each list is built separately.
//! - Each list is a pair of `FlowFilter`s, *left* and *right*, sent as
//!   "left OR right". One-sided flags (`--from-ip`, `--verdict`, ...) are
//!   added to both; two-sided flags (`--ip`, `--pod`, `--label`, ...) add
//!   their source field to left and their destination field to right. When
//!   left and right end up equal only one filter is sent.
//! - Repeating a flag adds values to the same field (OR); different flags
//!   set different fields of the same filter (AND).
//! - Namespace flags are applied last, as prefixes of the pod (or service)
//!   names of the matching side: `-n ns` alone selects pods `ns/` on either
//!   side.
//! - Some flags cannot be combined within one list (`--ip` with `--pod`,
//!   `--label` with `--from-label`, ...).

use weir_proto::flow::{
    self, EventTypeFilter, FlowFilter, HttpHeader, NetworkInterface, TcpFlags, Workload,
    flow_filter,
};

use crate::gofmt;

/// A flag value or flag combination Hubble rejects; the message is Hubble's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterFlagError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, FilterFlagError> {
    Err(FilterFlagError(msg.into()))
}

/// Groups of flags that cannot be used together in the same list.
const CONFLICTS: &[&[&str]] = &[
    &[
        "from-fqdn",
        "from-ip",
        "ip",
        "fqdn",
        "from-namespace",
        "namespace",
        "from-all-namespaces",
        "all-namespaces",
    ],
    &["from-fqdn", "from-ip", "ip", "fqdn", "from-pod", "pod"],
    &[
        "to-fqdn",
        "to-ip",
        "ip",
        "fqdn",
        "to-namespace",
        "namespace",
        "to-all-namespaces",
        "all-namespaces",
    ],
    &["to-fqdn", "to-ip", "ip", "fqdn", "to-pod", "pod"],
    &["to-pod", "namespace", "all-namespaces"],
    &["from-pod", "namespace", "all-namespaces"],
    &["to-service", "namespace", "all-namespaces"],
    &["from-service", "namespace", "all-namespaces"],
    &["label", "from-label"],
    &["label", "to-label"],
    &["service", "from-service"],
    &["service", "to-service"],
    &["port", "to-port"],
    &["port", "from-port"],
    &["identity", "to-identity"],
    &["identity", "from-identity"],
    &["workload", "to-workload"],
    &["workload", "from-workload"],
    &["encrypted", "unencrypted"],
];

/// Monitor message types by name (`-t drop`), as `cilium monitor` numbers them.
pub const EVENT_TYPES: &[(&str, i32)] = &[
    ("drop", 1),
    ("debug", 2),
    ("capture", 3),
    ("trace", 4),
    ("policy-verdict", 5),
    ("recorder", 6),
    ("trace-sock", 7),
    ("l7", 129),
    ("agent", 130),
];

/// Trace observation points by name (`-t trace:to-endpoint`): the monitor's
/// numbering, which is not the `TraceObservationPoint` enum's.
pub const TRACE_POINTS: &[(&str, i32)] = &[
    ("to-endpoint", 0),
    ("to-proxy", 1),
    ("to-host", 2),
    ("to-stack", 3),
    ("to-overlay", 4),
    ("from-endpoint", 5),
    ("from-proxy", 6),
    ("from-host", 7),
    ("from-stack", 8),
    ("from-overlay", 9),
    ("from-network", 10),
    ("to-network", 11),
    ("from-crypto", 12),
    ("to-crypto", 13),
];

/// Agent notification sub-types by name (`-t agent:policy-updated`).
const AGENT_SUBTYPES: &[(&str, i32)] = &[
    ("unspecified", 0),
    ("message", 1),
    ("agent-started", 2),
    ("endpoint-regenerate-success", 3),
    ("endpoint-regenerate-failure", 4),
    ("policy-updated", 5),
    ("policy-deleted", 6),
    ("endpoint-created", 7),
    ("endpoint-deleted", 8),
    ("ipcache-upserted", 9),
    ("ipcache-deleted", 10),
];

/// Reserved security identities by name, in numeric order.
pub const RESERVED_IDENTITIES: &[(&str, u32)] = &[
    ("host", 1),
    ("world", 2),
    ("unmanaged", 3),
    ("health", 4),
    ("init", 5),
    ("remote-node", 6),
    ("kube-apiserver", 7),
    ("ingress", 8),
    ("world-ipv4", 9),
    ("world-ipv6", 10),
];

/// One list (whitelist or blacklist) under construction.
#[derive(Debug, Default)]
struct Tracker {
    left: Option<FlowFilter>,
    right: Option<FlowFilter>,
    /// Namespaces of `-n`, `--from-namespace`, `--to-namespace` (`""` for
    /// the all-namespaces flags), applied when the filters are finished.
    ns: Vec<String>,
    src_ns: Vec<String>,
    dst_ns: Vec<String>,
    /// Flags used in this list, for the conflict check.
    changed: Vec<&'static str>,
}

impl Tracker {
    fn left(&mut self, update: impl FnOnce(&mut FlowFilter)) {
        update(self.left.get_or_insert_with(FlowFilter::default));
    }

    fn right(&mut self, update: impl FnOnce(&mut FlowFilter)) {
        update(self.right.get_or_insert_with(FlowFilter::default));
    }

    fn both(&mut self, update: impl Fn(&mut FlowFilter)) {
        self.left(&update);
        self.right(&update);
    }

    fn check_conflicts(&self) -> Result<(), FilterFlagError> {
        for group in CONFLICTS {
            for flag in group.iter().filter(|f| self.changed.contains(f)) {
                if let Some(other) = group
                    .iter()
                    .find(|o| *o != flag && self.changed.contains(o))
                {
                    return fail(format!("filters --{flag} and --{other} cannot be combined"));
                }
            }
        }
        Ok(())
    }

    fn check_namespace_conflicts(&self) -> Result<(), FilterFlagError> {
        let mut errors = Vec::new();
        for ff in [&self.left, &self.right].into_iter().flatten() {
            namespace_conflicts(&self.ns, &ff.source_pod, &mut errors);
            namespace_conflicts(&self.ns, &ff.source_service, &mut errors);
            namespace_conflicts(&self.ns, &ff.destination_pod, &mut errors);
            namespace_conflicts(&self.ns, &ff.destination_service, &mut errors);
            namespace_conflicts(&self.src_ns, &ff.source_pod, &mut errors);
            namespace_conflicts(&self.src_ns, &ff.source_service, &mut errors);
            namespace_conflicts(&self.dst_ns, &ff.destination_pod, &mut errors);
            namespace_conflicts(&self.dst_ns, &ff.destination_service, &mut errors);
            inconsistent_namespaces(&ff.source_pod, &ff.source_service, &mut errors);
            inconsistent_namespaces(&ff.destination_pod, &ff.destination_service, &mut errors);
            if !errors.is_empty() {
                return fail(errors.join("\n"));
            }
        }
        Ok(())
    }

    /// The finished list: nothing, one filter, or left and right.
    fn finish(mut self) -> Vec<FlowFilter> {
        if self.left.is_none()
            && self.right.is_none()
            && self.ns.is_empty()
            && self.src_ns.is_empty()
            && self.dst_ns.is_empty()
        {
            return Vec::new();
        }
        let mut left = self.left.take().unwrap_or_default();
        let mut right = self.right.take().unwrap_or_default();
        if !self.dst_ns.is_empty() {
            apply_dst_namespaces(&self.dst_ns, &mut left);
            apply_dst_namespaces(&self.dst_ns, &mut right);
        }
        if !self.src_ns.is_empty() {
            apply_src_namespaces(&self.src_ns, &mut left);
            apply_src_namespaces(&self.src_ns, &mut right);
        }
        if !self.ns.is_empty() {
            apply_src_namespaces(&self.ns, &mut left);
            apply_dst_namespaces(&self.ns, &mut right);
        }
        if left == right {
            vec![left]
        } else {
            vec![left, right]
        }
    }
}

fn namespace_of(name: &str) -> &str {
    match name.split_once('/') {
        Some((ns, _)) => ns,
        None => "",
    }
}

fn namespace_conflicts(namespaces: &[String], names: &[String], errors: &mut Vec<String>) {
    for ns in namespaces {
        if let Some(name) = names
            .iter()
            .find(|n| !namespace_of(n).is_empty() && namespace_of(n) != ns)
        {
            errors.push(format!(
                "namespace conflict: {} does not contain {}",
                gofmt::quote(ns),
                gofmt::quote(name)
            ));
            return;
        }
    }
}

fn inconsistent_namespaces(pods: &[String], services: &[String], errors: &mut Vec<String>) {
    for pod in pods {
        let pod_ns = namespace_of(pod);
        if pod_ns.is_empty() {
            continue;
        }
        if let Some(svc) = services.iter().find(|s| namespace_of(s) != pod_ns) {
            errors.push(format!(
                "namespace of service {} conflict with pod {}",
                gofmt::quote(svc),
                gofmt::quote(pod_ns)
            ));
            return;
        }
    }
}

/// Prefixes names without a namespace with every namespace.
fn add_namespaces(names: &[String], namespaces: &[String]) -> Vec<String> {
    if namespaces.is_empty() || names.is_empty() {
        return names.to_vec();
    }
    let mut out = Vec::new();
    for name in names {
        if name.contains('/') {
            out.push(name.clone());
        } else {
            out.extend(namespaces.iter().map(|ns| format!("{ns}/{name}")));
        }
    }
    out
}

fn apply_src_namespaces(namespaces: &[String], ff: &mut FlowFilter) {
    if ff.source_pod.is_empty() && ff.source_service.is_empty() {
        ff.source_pod = vec![String::new()];
    }
    ff.source_pod = add_namespaces(&ff.source_pod, namespaces);
    ff.source_service = add_namespaces(&ff.source_service, namespaces);
}

fn apply_dst_namespaces(namespaces: &[String], ff: &mut FlowFilter) {
    if ff.destination_pod.is_empty() && ff.destination_service.is_empty() {
        ff.destination_pod = vec![String::new()];
    }
    ff.destination_pod = add_namespaces(&ff.destination_pod, namespaces);
    ff.destination_service = add_namespaces(&ff.destination_service, namespaces);
}

/// Builds both lists from filter flags given in command-line order.
#[derive(Debug, Default)]
pub struct FilterBuilder {
    whitelist: Option<Tracker>,
    blacklist: Option<Tracker>,
    negate_next: bool,
}

/// The lists of a request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FilterLists {
    pub whitelist: Vec<FlowFilter>,
    pub blacklist: Vec<FlowFilter>,
}

impl FilterBuilder {
    /// Builds the lists of `ops` (`(flag, value)` in command-line order).
    pub fn build<'a>(
        ops: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<FilterLists, FilterFlagError> {
        let mut builder = FilterBuilder::default();
        for (flag, value) in ops {
            builder.apply(flag, value)?;
        }
        builder.finish()
    }

    /// Adds one flag occurrence.
    pub fn apply(&mut self, flag: &str, value: &str) -> Result<(), FilterFlagError> {
        if flag == "not" {
            if self.negate_next {
                return fail("consecutive --not statements");
            }
            self.negate_next = true;
            return Ok(());
        }
        let tracker = if std::mem::take(&mut self.negate_next) {
            self.blacklist.get_or_insert_with(Tracker::default)
        } else {
            self.whitelist.get_or_insert_with(Tracker::default)
        };
        set(tracker, flag, value)
    }

    /// The finished lists; fails on a trailing `--not`.
    pub fn finish(self) -> Result<FilterLists, FilterFlagError> {
        if self.negate_next {
            return fail("trailing --not found in the arguments");
        }
        Ok(FilterLists {
            whitelist: self.whitelist.map(Tracker::finish).unwrap_or_default(),
            blacklist: self.blacklist.map(Tracker::finish).unwrap_or_default(),
        })
    }
}

fn set(t: &mut Tracker, flag: &str, value: &str) -> Result<(), FilterFlagError> {
    let Some(known) = crate::observe::flags::FILTER_FLAGS
        .iter()
        .find(|f| f.name == flag)
    else {
        return fail(format!("unknown filter flag --{flag}"));
    };
    if !t.changed.contains(&known.name) {
        t.changed.push(known.name);
    }
    t.check_conflicts()?;

    let v = || value.to_owned();
    match flag {
        "uuid" => t.both(|f| f.uuid.push(v())),
        "fqdn" => {
            t.left(|f| f.source_fqdn.push(v()));
            t.right(|f| f.destination_fqdn.push(v()));
        }
        "from-fqdn" => t.both(|f| f.source_fqdn.push(v())),
        "to-fqdn" => t.both(|f| f.destination_fqdn.push(v())),
        "pod" => {
            t.left(|f| f.source_pod.push(v()));
            t.right(|f| f.destination_pod.push(v()));
        }
        "from-pod" => t.both(|f| f.source_pod.push(v())),
        "to-pod" => t.both(|f| f.destination_pod.push(v())),
        "ip" => {
            t.left(|f| f.source_ip.push(v()));
            t.right(|f| f.destination_ip.push(v()));
        }
        "from-ip" => t.both(|f| f.source_ip.push(v())),
        "to-ip" => t.both(|f| f.destination_ip.push(v())),
        "snat-ip" => t.both(|f| f.source_ip_xlated.push(v())),
        "ipv4" => t.both(|f| f.ip_version.push(flow::IpVersion::IPv4 as i32)),
        "ipv6" => t.both(|f| f.ip_version.push(flow::IpVersion::IPv6 as i32)),
        "ip-version" => {
            let version = ip_version(value) as i32;
            t.both(|f| f.ip_version.push(version));
        }
        "label" => {
            t.left(|f| f.source_label.push(v()));
            t.right(|f| f.destination_label.push(v()));
        }
        "from-label" => t.both(|f| f.source_label.push(v())),
        "to-label" => t.both(|f| f.destination_label.push(v())),
        "namespace" => t.ns.push(v()),
        "from-namespace" => t.src_ns.push(v()),
        "to-namespace" => t.dst_ns.push(v()),
        "all-namespaces" => t.ns.push(String::new()),
        "from-all-namespaces" => t.src_ns.push(String::new()),
        "to-all-namespaces" => t.dst_ns.push(String::new()),
        "service" => {
            t.left(|f| f.source_service.push(v()));
            t.right(|f| f.destination_service.push(v()));
        }
        "from-service" => t.both(|f| f.source_service.push(v())),
        "to-service" => t.both(|f| f.destination_service.push(v())),
        "port" => {
            t.left(|f| f.source_port.push(v()));
            t.right(|f| f.destination_port.push(v()));
        }
        "from-port" => t.both(|f| f.source_port.push(v())),
        "to-port" => t.both(|f| f.destination_port.push(v())),
        "trace-id" => t.both(|f| f.trace_id.push(v())),
        "ip-trace-id" => {
            if value == "0" {
                return fail("invalid --ip-trace-id value; must be greater than 0");
            }
            let id = parse_uint(value, u64::MAX)
                .map_err(|e| FilterFlagError(format!("invalid --ip-trace-id value: {e}")))?;
            t.both(|f| f.ip_trace_id.push(id));
        }
        "verdict" => {
            let Some(verdict) = flow::Verdict::from_str_name(value) else {
                return fail(format!("invalid --verdict value: {value}"));
            };
            t.both(|f| f.verdict.push(verdict as i32));
        }
        "drop-reason-desc" => {
            if value.is_empty() {
                return fail("empty --drop-reason-desc value");
            }
            let Some(reason) = flow::DropReason::from_str_name(value) else {
                return fail(format!("invalid --drop-reason-desc value: {value}"));
            };
            t.both(|f| f.drop_reason_desc.push(reason as i32));
        }
        "http-status" => t.both(|f| f.http_status_code.push(v())),
        "http-method" => t.both(|f| f.http_method.push(v())),
        "http-path" => t.both(|f| f.http_path.push(v())),
        "http-url" => t.both(|f| f.http_url.push(v())),
        "http-header" => {
            let Some((key, val)) = value.split_once(':') else {
                return fail(format!(
                    "invalid http-header value {}, expected name:value",
                    gofmt::quote(value)
                ));
            };
            let header = HttpHeader {
                key: key.to_owned(),
                value: val.to_owned(),
            };
            t.both(|f| f.http_header.push(header.clone()));
        }
        "type" => {
            let filter = event_type_filter(value)?;
            t.both(|f| f.event_type.push(filter));
        }
        "protocol" => t.both(|f| f.protocol.push(v())),
        "workload" => {
            let w = workload(value);
            t.left(|f| f.source_workload.push(w.clone()));
            t.right(|f| f.destination_workload.push(w.clone()));
        }
        "from-workload" => {
            let w = workload(value);
            t.both(|f| f.source_workload.push(w.clone()));
        }
        "to-workload" => {
            let w = workload(value);
            t.both(|f| f.destination_workload.push(w.clone()));
        }
        "identity" | "from-identity" | "to-identity" => {
            let id = identity(value)?;
            match flag {
                "identity" => {
                    t.left(|f| f.source_identity.push(id));
                    t.right(|f| f.destination_identity.push(id));
                }
                "from-identity" => t.both(|f| f.source_identity.push(id)),
                _ => t.both(|f| f.destination_identity.push(id)),
            }
        }
        "node-name" => t.both(|f| f.node_name.push(v())),
        "node-label" => t.both(|f| f.node_labels.push(v())),
        "cluster" => {
            t.left(|f| f.source_cluster_name.push(v()));
            t.right(|f| f.destination_cluster_name.push(v()));
        }
        "from-cluster" => t.both(|f| f.source_cluster_name.push(v())),
        "to-cluster" => t.both(|f| f.destination_cluster_name.push(v())),
        "tcp-flags" => {
            let flags = tcp_flags(value)?;
            t.both(|f| f.tcp_flags.push(flags));
        }
        "traffic-direction" => {
            let dir = match value.to_lowercase().as_str() {
                "ingress" => flow::TrafficDirection::Ingress,
                "egress" => flow::TrafficDirection::Egress,
                other => {
                    return fail(format!(
                        "{other}: invalid traffic direction, expected ingress or egress"
                    ));
                }
            };
            t.both(|f| f.traffic_direction.push(dir as i32));
        }
        "cel-expression" => t.both(|f| {
            f.experimental
                .get_or_insert_with(flow_filter::Experimental::default)
                .cel_expression
                .push(v());
        }),
        "interface" => {
            t.both(|f| {
                f.interface.push(NetworkInterface {
                    index: 0,
                    name: v(),
                })
            });
        }
        "encrypted" => t.both(|f| f.encrypted.push(true)),
        "unencrypted" => t.both(|f| f.encrypted.push(false)),
        other => return fail(format!("unknown filter flag --{other}")),
    }
    t.check_namespace_conflicts()
}

/// `--ip-version`: `4`, `v4`, `ipv4`, `ip4` (and the same for 6), anything
/// else means "not IP".
fn ip_version(value: &str) -> flow::IpVersion {
    match value.to_lowercase().as_str() {
        "4" | "v4" | "ipv4" | "ip4" => flow::IpVersion::IPv4,
        "6" | "v6" | "ipv6" | "ip6" => flow::IpVersion::IPv6,
        _ => flow::IpVersion::IpNotUsed,
    }
}

/// Go's `strconv.ParseUint(s, 10, bits)` with its error wording.
fn parse_uint(s: &str, max: u64) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            gofmt::quote(s)
        ));
    }
    match s.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "strconv.ParseUint: parsing {}: value out of range",
            gofmt::quote(s)
        )),
    }
}

/// `-t TYPE[:SUBTYPE]`.
fn event_type_filter(value: &str) -> Result<EventTypeFilter, FilterFlagError> {
    let (type_name, sub) = match value.split_once(':') {
        Some((t, s)) => (t, Some(s)),
        None => (value, None),
    };
    let r#type = match EVENT_TYPES.iter().find(|(name, _)| *name == type_name) {
        Some((_, n)) => *n,
        None => parse_uint(type_name, u64::from(u32::MAX)).map(|n| n as u32 as i32).map_err(|e| {
            FilterFlagError(format!(
                "unable to parse type '{type_name}', not a known type name and unable to parse as numeric value: {e}"
            ))
        })?,
    };
    let mut filter = EventTypeFilter {
        r#type,
        match_sub_type: false,
        sub_type: 0,
    };
    if let Some(sub) = sub {
        let named = match r#type {
            4 => TRACE_POINTS
                .iter()
                .find(|(n, _)| *n == sub)
                .map(|(_, v)| *v),
            130 => AGENT_SUBTYPES
                .iter()
                .find(|(n, _)| *n == sub)
                .map(|(_, v)| *v),
            _ => None,
        };
        let sub_type = match named {
            Some(n) => n,
            None => parse_uint(sub, u64::from(u32::MAX)).map(|n| n as u32 as i32).map_err(|e| {
                FilterFlagError(format!(
                    "unable to parse event sub-type '{sub}', not a known sub-type name and unable to parse as numeric value: {e}"
                ))
            })?,
        };
        filter.match_sub_type = true;
        filter.sub_type = sub_type;
    }
    Ok(filter)
}

/// `--workload [kind/]name`.
fn workload(value: &str) -> Workload {
    match value.split_once('/') {
        Some((kind, name)) => Workload {
            kind: kind.to_owned(),
            name: name.to_owned(),
        },
        None => Workload {
            kind: String::new(),
            name: value.to_owned(),
        },
    }
}

/// `--identity`: a reserved name or a number (decimal, `0x` hex or `0` octal).
fn identity(value: &str) -> Result<u32, FilterFlagError> {
    if let Some((_, id)) = RESERVED_IDENTITIES.iter().find(|(name, _)| *name == value) {
        return Ok(*id);
    }
    let parsed = if let Some(hex) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        u32::from_str_radix(hex, 16).ok()
    } else if value.len() > 1 && value.starts_with('0') {
        u32::from_str_radix(&value[1..], 8).ok()
    } else {
        value.parse::<u32>().ok()
    };
    parsed.ok_or_else(|| {
        let names: Vec<&str> = RESERVED_IDENTITIES.iter().map(|(n, _)| *n).collect();
        FilterFlagError(format!(
            "invalid security identity, expected one of {} or a numeric value",
            gofmt::string_list(&names)
        ))
    })
}

/// `--tcp-flags syn,ack`: one `TCPFlags` with every listed flag set.
fn tcp_flags(value: &str) -> Result<TcpFlags, FilterFlagError> {
    let mut flags = TcpFlags::default();
    for name in value.split(',') {
        match name.to_uppercase().as_str() {
            "SYN" => flags.syn = true,
            "FIN" => flags.fin = true,
            "RST" => flags.rst = true,
            "PSH" => flags.psh = true,
            "ACK" => flags.ack = true,
            "URG" => flags.urg = true,
            "ECE" => flags.ece = true,
            "CWR" => flags.cwr = true,
            "NS" => flags.ns = true,
            _ => return fail(format!("unknown tcp flag: {name}")),
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests;
