//! Hubble's `FlowFilter` semantics.
//!
//! A [`FlowFilters`] is compiled once from the whitelist and blacklist of a
//! `GetFlowsRequest` and then tested against each flow with
//! [`FlowFilters::matches`]: a flow is selected when it matches at least one
//! whitelist filter (or the whitelist is empty) and no blacklist filter.
//! Within one `FlowFilter` every field that is set must match; a field
//! matches when any of its values does. An empty `FlowFilter` matches every
//! flow.
//!
//! Everything that can be prepared (IP addresses, CIDRs, regular expressions,
//! DNS name and node name patterns, label selectors) is parsed in
//! [`FlowFilters::new`], which rejects invalid values with a [`FilterError`]
//! naming the list, the filter's index, the field and the value. Matching
//! does not allocate, except to percent-decode an `http_path` candidate.
//!
//! `experimental.cel_expression` is not supported and is rejected.

mod labels;
mod patterns;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use regex::Regex;

use crate::flow::{self, Flow, layer4, layer7};
use labels::Selector;
use patterns::{Cidr, StatusPattern};

/// Monitor message type of L7 (access log) events.
const EVENT_TYPE_L7: i32 = 129;

/// The whitelist and blacklist of a flow request, compiled.
#[derive(Debug, Clone, Default)]
pub struct FlowFilters {
    whitelist: Vec<CompiledFilter>,
    blacklist: Vec<CompiledFilter>,
}

impl FlowFilters {
    /// Compiles both lists; fails on the first invalid value.
    pub fn new(
        whitelist: &[flow::FlowFilter],
        blacklist: &[flow::FlowFilter],
    ) -> Result<Self, FilterError> {
        let compile = |list: FilterList, filters: &[flow::FlowFilter]| {
            filters
                .iter()
                .enumerate()
                .map(|(index, f)| CompiledFilter::new(f).map_err(|e| e.at(list, index)))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            whitelist: compile(FilterList::Whitelist, whitelist)?,
            blacklist: compile(FilterList::Blacklist, blacklist)?,
        })
    }

    /// Whether `flow` is selected: it matches some whitelist filter (or the
    /// whitelist is empty) and no blacklist filter.
    pub fn matches(&self, flow: &Flow) -> bool {
        (self.whitelist.is_empty() || self.whitelist.iter().any(|f| f.matches(flow)))
            && !self.blacklist.iter().any(|f| f.matches(flow))
    }

    /// True when both lists are empty, so that every flow matches.
    pub fn is_empty(&self) -> bool {
        self.whitelist.is_empty() && self.blacklist.is_empty()
    }
}

/// Which list of the request an invalid filter is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterList {
    Whitelist,
    Blacklist,
}

impl fmt::Display for FilterList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FilterList::Whitelist => "whitelist",
            FilterList::Blacklist => "blacklist",
        })
    }
}

/// An invalid filter: where it is and what is wrong with it. Displays as,
/// for example, `whitelist[0].source_ip: invalid IP address "10.0.0.300"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{list}[{index}].{field}: {kind}")]
pub struct FilterError {
    /// The list holding the filter.
    pub list: FilterList,
    /// Index of the `FlowFilter` in that list.
    pub index: usize,
    /// Proto name of the offending field, e.g. `source_label`.
    pub field: &'static str,
    pub kind: FilterErrorKind,
}

/// What is wrong with a filter value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterErrorKind {
    #[error("invalid IP address {value:?}")]
    InvalidIp { value: String },
    #[error("invalid CIDR {value:?}")]
    InvalidCidr { value: String },
    #[error("invalid pod or service name {value:?}, expected [namespace/][name-prefix]")]
    InvalidName { value: String },
    #[error("invalid DNS name pattern {value:?}: {reason}")]
    InvalidFqdnPattern { value: String, reason: String },
    #[error("invalid node name pattern {value:?}: {reason}")]
    InvalidNodeNamePattern { value: String, reason: String },
    #[error("invalid label selector {value:?}: {reason}")]
    InvalidLabelSelector { value: String, reason: String },
    #[error("invalid regular expression {value:?}: {reason}")]
    InvalidRegex { value: String, reason: String },
    #[error("invalid HTTP status code pattern {value:?}, expected e.g. \"404\", \"4+\" or \"50+\"")]
    InvalidHttpStatus { value: String },
    #[error("invalid port {value:?}, expected a number from 0 to 65535")]
    InvalidPort { value: String },
    #[error(
        "unknown protocol {value:?}, expected one of tcp, udp, sctp, icmp, icmpv4, icmpv6, vrrp, igmp, dns, http, kafka"
    )]
    UnknownProtocol { value: String },
    #[error("cluster name must not be empty")]
    EmptyClusterName,
    #[error("HTTP filters need event_type to be empty or to include l7 events (type 129)")]
    HttpNeedsL7EventType,
    #[error("CEL expressions are not supported by weir: {value:?}")]
    CelNotSupported { value: String },
}

/// A `FilterErrorKind` and its field, before the position is known.
struct FieldError {
    field: &'static str,
    kind: FilterErrorKind,
}

impl FieldError {
    fn at(self, list: FilterList, index: usize) -> FilterError {
        FilterError {
            list,
            index,
            field: self.field,
            kind: self.kind,
        }
    }
}

fn field_err(field: &'static str, kind: FilterErrorKind) -> FieldError {
    FieldError { field, kind }
}

/// One `FlowFilter`: all conditions must hold.
#[derive(Debug, Clone)]
struct CompiledFilter {
    conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Source,
    Destination,
}

#[derive(Debug, Clone, Copy)]
enum IpField {
    Source,
    SourceXlated,
    Destination,
}

#[derive(Debug, Clone, Copy)]
enum NameKind {
    Pod,
    Service,
}

#[derive(Debug, Clone, Copy)]
enum LabelsOf {
    Source,
    Destination,
    Node,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Icmp,
    Icmpv4,
    Icmpv6,
    Vrrp,
    Igmp,
    Dns,
    Http,
    Kafka,
}

/// `[namespace/][name-prefix]`; `namespace: None` means any namespace.
#[derive(Debug, Clone)]
struct NameFilter {
    namespace: Option<String>,
    prefix: String,
}

/// Set bits: FIN, SYN, RST, PSH, ACK, URG, ECE, CWR, NS.
type TcpFlagBits = u16;

#[derive(Debug, Clone)]
enum Condition {
    Uuid(Vec<String>),
    EventType(Vec<flow::EventTypeFilter>),
    Verdict(Vec<i32>),
    DropReasonDesc(Vec<i32>),
    Reply(Vec<bool>),
    Encrypted(Vec<bool>),
    Identity(Side, Vec<u32>),
    Protocol(Vec<Protocol>),
    Ip(IpField, IpMatcher),
    Name(Side, NameKind, Vec<NameFilter>),
    Workload(Side, Vec<flow::Workload>),
    Fqdn(Side, Regex),
    DnsQuery(Vec<Regex>),
    Labels(LabelsOf, Vec<Selector>),
    Port(Side, Vec<u16>),
    HttpStatus(Vec<StatusPattern>),
    HttpMethod(Vec<String>),
    HttpPath(Vec<Regex>),
    HttpUrl(Vec<Regex>),
    HttpHeader(Vec<flow::HttpHeader>),
    TcpFlags(Vec<TcpFlagBits>),
    NodeName(Regex),
    ClusterName(Side, Vec<String>),
    IpVersion(Vec<i32>),
    TraceId(Vec<String>),
    TrafficDirection(Vec<i32>),
    Interface(Vec<flow::NetworkInterface>),
    IpTraceId(Vec<u64>),
}

#[derive(Debug, Clone, Default)]
struct IpMatcher {
    exact: Vec<(String, IpAddr)>,
    cidrs: Vec<Cidr>,
}

impl CompiledFilter {
    fn new(f: &flow::FlowFilter) -> Result<Self, FieldError> {
        let mut c = Vec::new();

        if let Some(exp) = &f.experimental
            && let Some(expr) = exp.cel_expression.first()
        {
            return Err(field_err(
                "experimental.cel_expression",
                FilterErrorKind::CelNotSupported {
                    value: expr.clone(),
                },
            ));
        }

        if !f.uuid.is_empty() {
            c.push(Condition::Uuid(f.uuid.clone()));
        }
        if !f.event_type.is_empty() {
            c.push(Condition::EventType(f.event_type.clone()));
        }
        if !f.verdict.is_empty() {
            c.push(Condition::Verdict(f.verdict.clone()));
        }
        if !f.drop_reason_desc.is_empty() {
            c.push(Condition::DropReasonDesc(f.drop_reason_desc.clone()));
        }
        if !f.reply.is_empty() {
            c.push(Condition::Reply(f.reply.clone()));
        }
        if !f.encrypted.is_empty() {
            c.push(Condition::Encrypted(f.encrypted.clone()));
        }
        if !f.source_identity.is_empty() {
            c.push(Condition::Identity(Side::Source, f.source_identity.clone()));
        }
        if !f.destination_identity.is_empty() {
            c.push(Condition::Identity(
                Side::Destination,
                f.destination_identity.clone(),
            ));
        }
        if !f.protocol.is_empty() {
            c.push(Condition::Protocol(compile_protocols(&f.protocol)?));
        }
        for (field, which, values) in [
            ("source_ip", IpField::Source, &f.source_ip),
            ("destination_ip", IpField::Destination, &f.destination_ip),
            (
                "source_ip_xlated",
                IpField::SourceXlated,
                &f.source_ip_xlated,
            ),
        ] {
            if !values.is_empty() {
                c.push(Condition::Ip(which, compile_ips(field, values)?));
            }
        }
        for (field, side, kind, values) in [
            ("source_pod", Side::Source, NameKind::Pod, &f.source_pod),
            (
                "destination_pod",
                Side::Destination,
                NameKind::Pod,
                &f.destination_pod,
            ),
            (
                "source_service",
                Side::Source,
                NameKind::Service,
                &f.source_service,
            ),
            (
                "destination_service",
                Side::Destination,
                NameKind::Service,
                &f.destination_service,
            ),
        ] {
            if !values.is_empty() {
                c.push(Condition::Name(side, kind, compile_names(field, values)?));
            }
        }
        if !f.source_workload.is_empty() {
            c.push(Condition::Workload(Side::Source, f.source_workload.clone()));
        }
        if !f.destination_workload.is_empty() {
            c.push(Condition::Workload(
                Side::Destination,
                f.destination_workload.clone(),
            ));
        }
        for (field, side, values) in [
            ("source_fqdn", Side::Source, &f.source_fqdn),
            ("destination_fqdn", Side::Destination, &f.destination_fqdn),
        ] {
            if !values.is_empty() {
                let re = patterns::fqdn_regex(values).map_err(|(value, reason)| {
                    field_err(field, FilterErrorKind::InvalidFqdnPattern { value, reason })
                })?;
                c.push(Condition::Fqdn(side, re));
            }
        }
        if !f.dns_query.is_empty() {
            c.push(Condition::DnsQuery(compile_regexes(
                "dns_query",
                &f.dns_query,
            )?));
        }
        for (field, of, values) in [
            ("source_label", LabelsOf::Source, &f.source_label),
            (
                "destination_label",
                LabelsOf::Destination,
                &f.destination_label,
            ),
            ("node_labels", LabelsOf::Node, &f.node_labels),
        ] {
            if !values.is_empty() {
                c.push(Condition::Labels(of, compile_selectors(field, values)?));
            }
        }
        for (field, side, values) in [
            ("source_port", Side::Source, &f.source_port),
            ("destination_port", Side::Destination, &f.destination_port),
        ] {
            if !values.is_empty() {
                c.push(Condition::Port(side, compile_ports(field, values)?));
            }
        }

        let http_ok =
            f.event_type.is_empty() || f.event_type.iter().any(|t| t.r#type == EVENT_TYPE_L7);
        let http_fields: [(&'static str, bool); 5] = [
            ("http_status_code", !f.http_status_code.is_empty()),
            ("http_method", !f.http_method.is_empty()),
            ("http_path", !f.http_path.is_empty()),
            ("http_url", !f.http_url.is_empty()),
            ("http_header", !f.http_header.is_empty()),
        ];
        if !http_ok && let Some((field, _)) = http_fields.iter().find(|(_, set)| *set) {
            return Err(field_err(field, FilterErrorKind::HttpNeedsL7EventType));
        }
        if !f.http_status_code.is_empty() {
            let codes = f
                .http_status_code
                .iter()
                .map(|s| {
                    StatusPattern::parse(s).ok_or_else(|| {
                        field_err(
                            "http_status_code",
                            FilterErrorKind::InvalidHttpStatus { value: s.clone() },
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            c.push(Condition::HttpStatus(codes));
        }
        if !f.http_method.is_empty() {
            c.push(Condition::HttpMethod(f.http_method.clone()));
        }
        if !f.http_path.is_empty() {
            c.push(Condition::HttpPath(compile_regexes(
                "http_path",
                &f.http_path,
            )?));
        }
        if !f.http_url.is_empty() {
            c.push(Condition::HttpUrl(compile_regexes(
                "http_url",
                &f.http_url,
            )?));
        }
        if !f.http_header.is_empty() {
            c.push(Condition::HttpHeader(f.http_header.clone()));
        }

        if !f.tcp_flags.is_empty() {
            c.push(Condition::TcpFlags(
                f.tcp_flags.iter().map(tcp_flag_bits).collect(),
            ));
        }
        if !f.node_name.is_empty() {
            let re = patterns::node_name_regex(&f.node_name).map_err(|(value, reason)| {
                field_err(
                    "node_name",
                    FilterErrorKind::InvalidNodeNamePattern { value, reason },
                )
            })?;
            c.push(Condition::NodeName(re));
        }
        for (field, side, names) in [
            ("source_cluster_name", Side::Source, &f.source_cluster_name),
            (
                "destination_cluster_name",
                Side::Destination,
                &f.destination_cluster_name,
            ),
        ] {
            if !names.is_empty() {
                if names.iter().any(String::is_empty) {
                    return Err(field_err(field, FilterErrorKind::EmptyClusterName));
                }
                c.push(Condition::ClusterName(side, names.clone()));
            }
        }
        if !f.ip_version.is_empty() {
            c.push(Condition::IpVersion(f.ip_version.clone()));
        }
        if !f.trace_id.is_empty() {
            c.push(Condition::TraceId(f.trace_id.clone()));
        }
        if !f.traffic_direction.is_empty() {
            c.push(Condition::TrafficDirection(f.traffic_direction.clone()));
        }
        if !f.interface.is_empty() {
            c.push(Condition::Interface(f.interface.clone()));
        }
        if !f.ip_trace_id.is_empty() {
            c.push(Condition::IpTraceId(f.ip_trace_id.clone()));
        }

        Ok(Self { conditions: c })
    }

    fn matches(&self, flow: &Flow) -> bool {
        self.conditions.iter().all(|c| c.matches(flow))
    }
}

fn compile_protocols(values: &[String]) -> Result<Vec<Protocol>, FieldError> {
    values
        .iter()
        .map(|v| {
            Ok(match v.to_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                "sctp" => Protocol::Sctp,
                "icmp" => Protocol::Icmp,
                "icmpv4" => Protocol::Icmpv4,
                "icmpv6" => Protocol::Icmpv6,
                "vrrp" => Protocol::Vrrp,
                "igmp" => Protocol::Igmp,
                "dns" => Protocol::Dns,
                "http" => Protocol::Http,
                "kafka" => Protocol::Kafka,
                _ => {
                    return Err(field_err(
                        "protocol",
                        FilterErrorKind::UnknownProtocol { value: v.clone() },
                    ));
                }
            })
        })
        .collect()
}

fn compile_ips(field: &'static str, values: &[String]) -> Result<IpMatcher, FieldError> {
    let mut m = IpMatcher::default();
    for v in values {
        if v.contains('/') {
            let cidr = Cidr::parse(v).ok_or_else(|| {
                field_err(field, FilterErrorKind::InvalidCidr { value: v.clone() })
            })?;
            m.cidrs.push(cidr);
        } else {
            let addr = v
                .parse::<IpAddr>()
                .map_err(|_| field_err(field, FilterErrorKind::InvalidIp { value: v.clone() }))?;
            m.exact.push((v.clone(), addr));
        }
    }
    Ok(m)
}

fn compile_names(field: &'static str, values: &[String]) -> Result<Vec<NameFilter>, FieldError> {
    values
        .iter()
        .map(|v| {
            let invalid = || field_err(field, FilterErrorKind::InvalidName { value: v.clone() });
            let (namespace, prefix) = match v.split_once('/') {
                Some((_, rest)) if rest.contains('/') => return Err(invalid()),
                Some(("", "")) => return Err(invalid()),
                Some(("", prefix)) => (None, prefix),
                Some((ns, prefix)) => (Some(ns.to_owned()), prefix),
                None if v.is_empty() => return Err(invalid()),
                None => (Some("default".to_owned()), v.as_str()),
            };
            Ok(NameFilter {
                namespace,
                prefix: prefix.to_owned(),
            })
        })
        .collect()
}

fn compile_regexes(field: &'static str, values: &[String]) -> Result<Vec<Regex>, FieldError> {
    values
        .iter()
        .map(|v| {
            Regex::new(v).map_err(|e| {
                field_err(
                    field,
                    FilterErrorKind::InvalidRegex {
                        value: v.clone(),
                        reason: e.to_string(),
                    },
                )
            })
        })
        .collect()
}

fn compile_selectors(field: &'static str, values: &[String]) -> Result<Vec<Selector>, FieldError> {
    values
        .iter()
        .map(|v| {
            Selector::parse(v).map_err(|reason| {
                field_err(
                    field,
                    FilterErrorKind::InvalidLabelSelector {
                        value: v.clone(),
                        reason,
                    },
                )
            })
        })
        .collect()
}

fn compile_ports(field: &'static str, values: &[String]) -> Result<Vec<u16>, FieldError> {
    values
        .iter()
        .map(|v| {
            let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
            digits
                .then(|| v.parse::<u16>().ok())
                .flatten()
                .ok_or_else(|| field_err(field, FilterErrorKind::InvalidPort { value: v.clone() }))
        })
        .collect()
}

fn tcp_flag_bits(f: &flow::TcpFlags) -> TcpFlagBits {
    [f.fin, f.syn, f.rst, f.psh, f.ack, f.urg, f.ece, f.cwr, f.ns]
        .iter()
        .enumerate()
        .fold(
            0,
            |bits, (i, set)| if *set { bits | (1 << i) } else { bits },
        )
}

fn endpoint(flow: &Flow, side: Side) -> Option<&flow::Endpoint> {
    match side {
        Side::Source => flow.source.as_ref(),
        Side::Destination => flow.destination.as_ref(),
    }
}

fn l4_ports(flow: &Flow) -> Option<(u32, u32)> {
    match flow.l4.as_ref()?.protocol.as_ref()? {
        layer4::Protocol::Tcp(t) => Some((t.source_port, t.destination_port)),
        layer4::Protocol::Udp(u) => Some((u.source_port, u.destination_port)),
        layer4::Protocol::Sctp(s) => Some((s.source_port, s.destination_port)),
        _ => None,
    }
}

fn http(flow: &Flow) -> Option<&flow::Http> {
    match flow.l7.as_ref()?.record.as_ref()? {
        layer7::Record::Http(h) => Some(h),
        _ => None,
    }
}

/// Unicode simple case folding comparison, like Go's `strings.EqualFold`.
fn eq_fold(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl Protocol {
    fn matches(self, flow: &Flow) -> bool {
        use layer4::Protocol as L4;
        let l4 = flow.l4.as_ref().and_then(|l| l.protocol.as_ref());
        let l7 = flow.l7.as_ref().and_then(|l| l.record.as_ref());
        match self {
            Protocol::Tcp => matches!(l4, Some(L4::Tcp(_))),
            Protocol::Udp => matches!(l4, Some(L4::Udp(_))),
            Protocol::Sctp => matches!(l4, Some(L4::Sctp(_))),
            Protocol::Icmp => matches!(l4, Some(L4::IcmPv4(_) | L4::IcmPv6(_))),
            Protocol::Icmpv4 => matches!(l4, Some(L4::IcmPv4(_))),
            Protocol::Icmpv6 => matches!(l4, Some(L4::IcmPv6(_))),
            Protocol::Vrrp => matches!(l4, Some(L4::Vrrp(_))),
            Protocol::Igmp => matches!(l4, Some(L4::Igmp(_))),
            Protocol::Dns => matches!(l7, Some(layer7::Record::Dns(_))),
            Protocol::Http => matches!(l7, Some(layer7::Record::Http(_))),
            #[allow(deprecated)] // Kafka records are deprecated but still valid input.
            Protocol::Kafka => matches!(l7, Some(layer7::Record::Kafka(_))),
        }
    }
}

impl IpMatcher {
    fn matches(&self, ip: &str) -> bool {
        if ip.is_empty() {
            return false;
        }
        if self.exact.iter().any(|(text, _)| text == ip) {
            return true;
        }
        let Ok(addr) = ip.parse::<IpAddr>() else {
            return false;
        };
        self.exact.iter().any(|(_, a)| *a == addr) || self.cidrs.iter().any(|c| c.contains(addr))
    }
}

impl NameFilter {
    fn matches(&self, namespace: &str, name: &str) -> bool {
        self.namespace.as_deref().is_none_or(|ns| ns == namespace) && name.starts_with(&self.prefix)
    }
}

impl Condition {
    fn matches(&self, flow: &Flow) -> bool {
        match self {
            Condition::Uuid(ids) => ids.contains(&flow.uuid),
            Condition::EventType(filters) => flow.event_type.as_ref().is_some_and(|ev| {
                filters.iter().any(|f| {
                    (f.r#type == 0 || f.r#type == ev.r#type)
                        && (!f.match_sub_type || f.sub_type == ev.sub_type)
                })
            }),
            Condition::Verdict(v) => v.contains(&flow.verdict),
            Condition::DropReasonDesc(reasons) => {
                flow.verdict == flow::Verdict::Dropped as i32
                    && reasons.contains(&flow.drop_reason_desc)
            }
            Condition::Reply(values) => {
                // Dropped flows of unknown direction count as requests, as
                // Hubble does for clients of the old `reply` field.
                if flow.is_reply.is_none() && flow.verdict != flow::Verdict::Dropped as i32 {
                    return false;
                }
                let reply = flow.is_reply.as_ref().is_some_and(|b| b.value);
                values.contains(&reply)
            }
            Condition::Encrypted(values) => {
                values.contains(&flow.ip.as_ref().is_some_and(|ip| ip.encrypted))
            }
            Condition::Identity(side, ids) => {
                endpoint(flow, *side).is_some_and(|ep| ids.contains(&ep.identity))
            }
            Condition::Protocol(protocols) => protocols.iter().any(|p| p.matches(flow)),
            Condition::Ip(which, m) => {
                let ip = flow.ip.as_ref().map_or("", |ip| match which {
                    IpField::Source => ip.source.as_str(),
                    IpField::SourceXlated => ip.source_xlated.as_str(),
                    IpField::Destination => ip.destination.as_str(),
                });
                m.matches(ip)
            }
            Condition::Name(side, kind, filters) => {
                let (namespace, name) = match kind {
                    NameKind::Pod => endpoint(flow, *side)
                        .map_or(("", ""), |ep| (ep.namespace.as_str(), ep.pod_name.as_str())),
                    NameKind::Service => {
                        let svc = match side {
                            Side::Source => flow.source_service.as_ref(),
                            Side::Destination => flow.destination_service.as_ref(),
                        };
                        svc.map_or(("", ""), |s| (s.namespace.as_str(), s.name.as_str()))
                    }
                };
                if namespace.is_empty() && name.is_empty() {
                    return false;
                }
                filters.iter().any(|f| f.matches(namespace, name))
            }
            Condition::Workload(side, filters) => endpoint(flow, *side).is_some_and(|ep| {
                ep.workloads.iter().any(|w| {
                    filters.iter().any(|f| {
                        (f.name.is_empty() || f.name == w.name)
                            && (f.kind.is_empty() || f.kind == w.kind)
                    })
                })
            }),
            Condition::Fqdn(side, re) => {
                let names = match side {
                    Side::Source => &flow.source_names,
                    Side::Destination => &flow.destination_names,
                };
                names.iter().any(|n| re.is_match(n))
            }
            Condition::DnsQuery(res) => match flow.l7.as_ref().and_then(|l| l.record.as_ref()) {
                Some(layer7::Record::Dns(dns)) => res.iter().any(|re| re.is_match(&dns.query)),
                _ => false,
            },
            Condition::Labels(of, selectors) => {
                let labels: &[String] = match of {
                    LabelsOf::Source => flow.source.as_ref().map_or(&[], |ep| &ep.labels),
                    LabelsOf::Destination => flow.destination.as_ref().map_or(&[], |ep| &ep.labels),
                    LabelsOf::Node => &flow.node_labels,
                };
                selectors.iter().any(|s| s.matches(labels))
            }
            Condition::Port(side, ports) => l4_ports(flow).is_some_and(|(src, dst)| {
                let port = match side {
                    Side::Source => src,
                    Side::Destination => dst,
                };
                // Ports are 16 bit; keep the low bits of out-of-range values.
                ports.contains(&(port as u16))
            }),
            Condition::HttpStatus(patterns) => http(flow).is_some_and(|h| {
                if h.code == 0 {
                    return false;
                }
                let mut buf = [0u8; 10];
                let code = patterns::format_status(h.code, &mut buf);
                patterns.iter().any(|p| p.matches(code))
            }),
            Condition::HttpMethod(methods) => http(flow).is_some_and(|h| {
                !h.method.is_empty() && methods.iter().any(|m| eq_fold(m, &h.method))
            }),
            Condition::HttpPath(res) => http(flow).is_some_and(|h| {
                !h.url.is_empty()
                    && patterns::request_uri_path(&h.url)
                        .is_some_and(|path| res.iter().any(|re| re.is_match(&path)))
            }),
            Condition::HttpUrl(res) => http(flow)
                .is_some_and(|h| !h.url.is_empty() && res.iter().any(|re| re.is_match(&h.url))),
            Condition::HttpHeader(wanted) => http(flow).is_some_and(|h| {
                h.headers.iter().any(|hh| {
                    wanted
                        .iter()
                        .any(|w| w.key == hh.key && w.value == hh.value)
                })
            }),
            Condition::TcpFlags(wanted) => {
                let flags = match flow.l4.as_ref().and_then(|l| l.protocol.as_ref()) {
                    Some(layer4::Protocol::Tcp(tcp)) => tcp.flags.as_ref(),
                    _ => None,
                };
                flags.is_some_and(|flags| {
                    let have = tcp_flag_bits(flags);
                    wanted.iter().any(|w| w & have == *w)
                })
            }
            Condition::NodeName(re) => {
                let node = flow.node_name.as_str();
                if node.is_empty() {
                    false
                } else if node.contains('/') {
                    re.is_match(node)
                } else {
                    // Names without a cluster are in the default cluster;
                    // build "default/<node>" on the stack when it fits.
                    let mut buf = [0u8; 256];
                    let len = patterns::DEFAULT_CLUSTER.len() + 1 + node.len();
                    if len <= buf.len() {
                        buf[..patterns::DEFAULT_CLUSTER.len()]
                            .copy_from_slice(patterns::DEFAULT_CLUSTER.as_bytes());
                        buf[patterns::DEFAULT_CLUSTER.len()] = b'/';
                        buf[patterns::DEFAULT_CLUSTER.len() + 1..len]
                            .copy_from_slice(node.as_bytes());
                        std::str::from_utf8(&buf[..len]).is_ok_and(|s| re.is_match(s))
                    } else {
                        re.is_match(&format!("{}/{node}", patterns::DEFAULT_CLUSTER))
                    }
                }
            }
            Condition::ClusterName(side, names) => {
                let cluster = endpoint(flow, *side).map_or("", |ep| ep.cluster_name.as_str());
                names.iter().any(|n| n == cluster)
            }
            Condition::IpVersion(versions) => {
                versions.contains(&flow.ip.as_ref().map_or(0, |ip| ip.ip_version))
            }
            Condition::TraceId(ids) => {
                let id = flow
                    .trace_context
                    .as_ref()
                    .and_then(|t| t.parent.as_ref())
                    .map_or("", |p| p.trace_id.as_str());
                ids.iter().any(|t| t == id)
            }
            Condition::TrafficDirection(dirs) => dirs.contains(&flow.traffic_direction),
            Condition::Interface(filters) => flow.interface.as_ref().is_some_and(|iface| {
                filters.iter().any(|f| {
                    (f.index == 0 || f.index == iface.index)
                        && (f.name.is_empty() || f.name == iface.name)
                })
            }),
            Condition::IpTraceId(ids) => flow
                .ip_trace_id
                .as_ref()
                .is_some_and(|t| ids.contains(&t.trace_id)),
        }
    }
}
