//! The pieces of a printed flow: endpoints, identities, event type, verdict
//! and summary, as Hubble renders them.

use weir_proto::flow::{
    self, DebugCapturePoint, Flow, L7FlowType, Policy, SocketTranslationPoint, TrafficDirection,
    Verdict, layer4, layer7,
};

use super::color::{Color, Painter, clean};

/// Monitor message types (`CiliumEventType.type`).
const TYPE_DROP: i32 = 1;
const TYPE_CAPTURE: i32 = 3;
const TYPE_TRACE: i32 = 4;
const TYPE_POLICY_VERDICT: i32 = 5;
const TYPE_TRACE_SOCK: i32 = 7;

/// The fields that name one side of a flow.
struct Side<'a> {
    ip: &'a str,
    port: Option<u32>,
    endpoint: Option<&'a flow::Endpoint>,
    service: Option<&'a flow::Service>,
    names: &'a [String],
}

/// What a flow line shows, computed once per flow.
pub struct FlowView<'a> {
    flow: &'a Flow,
    paint: Painter,
    ip_translation: bool,
    policy_names: bool,
}

impl<'a> FlowView<'a> {
    pub fn new(flow: &'a Flow, paint: Painter, ip_translation: bool, policy_names: bool) -> Self {
        FlowView {
            flow,
            paint,
            ip_translation,
            policy_names,
        }
    }

    /// Source and destination as `ns/pod:port`, `ns/service:port`, DNS names
    /// or the IP address; MAC addresses for non-IP flows.
    pub fn hosts(&self) -> (String, String) {
        let f = self.flow;
        let Some(ip) = &f.ip else {
            return match &f.ethernet {
                Some(eth) => (
                    self.host_color(&clean(&eth.source)),
                    self.host_color(&clean(&eth.destination)),
                ),
                None => (String::new(), String::new()),
            };
        };
        let (src_port, dst_port) = ports(f);
        let src = Side {
            ip: &ip.source,
            port: src_port,
            endpoint: f.source.as_ref(),
            service: f.source_service.as_ref(),
            names: &f.source_names,
        };
        let dst = Side {
            ip: &ip.destination,
            port: dst_port,
            endpoint: f.destination.as_ref(),
            service: f.destination_service.as_ref(),
            names: &f.destination_names,
        };
        (self.host(&src), self.host(&dst))
    }

    /// One side's host. A service's namespace replaces the endpoint's, as in
    /// Hubble.
    fn host(&self, side: &Side<'_>) -> String {
        let mut ns = side.endpoint.map_or("", |e| e.namespace.as_str());
        let pod = side.endpoint.map_or("", |e| e.pod_name.as_str());
        let mut svc = "";
        if let Some(s) = side.service {
            ns = s.namespace.as_str();
            svc = s.name.as_str();
        }
        self.host_color(&self.hostname(side.ip, side.port, ns, pod, svc, side.names))
    }

    fn hostname(
        &self,
        ip: &str,
        port: Option<u32>,
        ns: &str,
        pod: &str,
        svc: &str,
        names: &[String],
    ) -> String {
        let join = |a: &str, b: &str| {
            if a.is_empty() {
                b.to_owned()
            } else {
                format!("{a}/{b}")
            }
        };
        let host = if self.ip_translation && !pod.is_empty() {
            join(ns, pod)
        } else if self.ip_translation && !svc.is_empty() {
            join(ns, svc)
        } else if self.ip_translation && !names.is_empty() {
            names.join(",")
        } else {
            ip.to_owned()
        };
        let host = clean(&host);
        match port {
            Some(p) if p != 0 => {
                let port = self.paint.paint(Color::Yellow, &p.to_string());
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            }
            _ => host,
        }
    }

    fn host_color(&self, host: &str) -> String {
        self.paint.paint(Color::Cyan, host)
    }

    /// `(ID:1234)`, or `(world)` for reserved identities.
    pub fn identities(&self) -> (String, String) {
        let id = |ep: &Option<flow::Endpoint>| {
            let n = ep.as_ref().map_or(0, |e| e.identity);
            self.paint.paint(Color::Magenta, &identity_label(n))
        };
        (id(&self.flow.source), id(&self.flow.destination))
    }

    /// `->`, `<-` (reply; the caller swaps the sides) or `<>` (unknown).
    pub fn is_reply(&self) -> Option<bool> {
        self.flow.is_reply.as_ref().map(|b| b.value)
    }

    /// The TYPE column: `to-endpoint`, `Policy denied`, `http-request`,
    /// `policy-verdict:L3-L4 INGRESS`, ...
    pub fn event_type(&self) -> String {
        clean(&flow_type(self.flow))
    }

    /// The VERDICT column, colored; policy verdicts read ALLOWED, DENIED or
    /// AUDITED, with `BY name (Kind), ...` under `--print-policy-names`.
    pub fn verdict(&self) -> String {
        let f = self.flow;
        let is_policy_verdict = f
            .event_type
            .as_ref()
            .is_some_and(|e| e.r#type == TYPE_POLICY_VERDICT);
        let name = enum_name(f.verdict, |v| {
            Verdict::try_from(v).ok().map(|v| v.as_str_name())
        });
        let (text, color, policies): (String, Option<Color>, Vec<&Policy>) =
            match Verdict::try_from(f.verdict) {
                Ok(Verdict::Forwarded | Verdict::Redirected) => (
                    if is_policy_verdict {
                        "ALLOWED".into()
                    } else {
                        name
                    },
                    Some(Color::Green),
                    f.ingress_allowed_by
                        .iter()
                        .chain(&f.egress_allowed_by)
                        .collect(),
                ),
                Ok(Verdict::Dropped | Verdict::Error) => (
                    if is_policy_verdict {
                        "DENIED".into()
                    } else {
                        name
                    },
                    Some(Color::Red),
                    f.ingress_denied_by
                        .iter()
                        .chain(&f.egress_denied_by)
                        .collect(),
                ),
                Ok(Verdict::Audit) => (
                    if is_policy_verdict {
                        "AUDITED".into()
                    } else {
                        name
                    },
                    Some(Color::Yellow),
                    f.ingress_denied_by
                        .iter()
                        .chain(&f.egress_denied_by)
                        .collect(),
                ),
                Ok(Verdict::Traced | Verdict::Translated) => {
                    (name, Some(Color::Yellow), Vec::new())
                }
                _ => (name, None, Vec::new()),
            };
        let mut text = text;
        if self.policy_names && is_policy_verdict {
            text.push_str(&clean(&policy_names(&policies)));
        }
        match color {
            Some(c) => self.paint.paint(c, &text),
            None => text,
        }
    }

    /// The SUMMARY column: `IP Trace ID: n; ` + the server's summary +
    /// `; Auth: SPIRE` when authentication was required.
    pub fn summary(&self) -> String {
        let f = self.flow;
        let mut out = String::new();
        if let Some(trace) = f.ip_trace_id.as_ref().filter(|t| t.trace_id > 0) {
            out.push_str(&format!("IP Trace ID: {}; ", trace.trace_id));
        }
        out.push_str(&clean(&f.summary));
        match flow::AuthType::try_from(f.auth_type) {
            Ok(flow::AuthType::Disabled) => {}
            Ok(flow::AuthType::TestAlwaysFail) => {
                out.push_str("; Auth: ");
                out.push_str(&self.paint.paint(Color::Red, "TEST_ALWAYS_FAIL"));
            }
            other => {
                let name = other
                    .map(|a| a.as_str_name().to_owned())
                    .unwrap_or_else(|_| f.auth_type.to_string());
                out.push_str("; Auth: ");
                out.push_str(&self.paint.paint(Color::Green, &name));
            }
        }
        out
    }
}

/// The enum's name, or its number when the schema does not know it (as Go
/// prints unknown enum values).
fn enum_name(value: i32, name: impl Fn(i32) -> Option<&'static str>) -> String {
    name(value).map_or_else(|| value.to_string(), str::to_owned)
}

fn ports(f: &Flow) -> (Option<u32>, Option<u32>) {
    match f.l4.as_ref().and_then(|l4| l4.protocol.as_ref()) {
        Some(layer4::Protocol::Tcp(t)) => (Some(t.source_port), Some(t.destination_port)),
        Some(layer4::Protocol::Udp(u)) => (Some(u.source_port), Some(u.destination_port)),
        Some(layer4::Protocol::Sctp(s)) => (Some(s.source_port), Some(s.destination_port)),
        _ => (None, None),
    }
}

/// Names of reserved identities, by number.
const IDENTITY_NAMES: &[(u32, &str)] = &[
    (0, "unknown"),
    (1, "host"),
    (2, "world"),
    (3, "unmanaged"),
    (4, "health"),
    (5, "init"),
    (6, "remote-node"),
    (7, "kube-apiserver"),
    (8, "ingress"),
    (9, "world-ipv4"),
    (10, "world-ipv6"),
];

/// `(host)` for a reserved identity, `(ID:n)` otherwise.
pub fn identity_label(id: u32) -> String {
    match IDENTITY_NAMES.iter().find(|(n, _)| *n == id) {
        Some((_, name)) => format!("({name})"),
        None => format!("(ID:{id})"),
    }
}

/// ` BY a (Kind), b (Kind)` for the policies with both a name and a kind.
pub fn policy_names(policies: &[&Policy]) -> String {
    let named: Vec<String> = policies
        .iter()
        .filter(|p| !p.name.is_empty() && !p.kind.is_empty())
        .map(|p| format!("{} ({})", p.name, p.kind))
        .collect();
    if named.is_empty() {
        String::new()
    } else {
        format!(" BY {}", named.join(", "))
    }
}

/// The TYPE column of a flow.
// Kafka records are deprecated in the API but still printed.
#[allow(deprecated)]
pub fn flow_type(f: &Flow) -> String {
    if let Some(l7) = &f.l7 {
        let kind = L7FlowType::try_from(l7.r#type)
            .map(|t| t.as_str_name().to_lowercase())
            .unwrap_or_else(|_| l7.r#type.to_string());
        return match &l7.record {
            Some(layer7::Record::Http(_)) => format!("http-{kind}"),
            Some(layer7::Record::Dns(dns)) => format!("dns-{kind} {}", dns.observation_source),
            Some(layer7::Record::Kafka(_)) => format!("kafka-{kind}"),
            None => format!("l7-{kind}"),
        };
    }
    let Some(et) = &f.event_type else {
        return "UNKNOWN".to_owned();
    };
    match et.r#type {
        TYPE_TRACE => trace_point(et.sub_type),
        TYPE_DROP => drop_reason(et.sub_type as u8),
        TYPE_POLICY_VERDICT => {
            let direction = enum_name(f.traffic_direction, |v| {
                TrafficDirection::try_from(v).ok().map(|d| d.as_str_name())
            });
            format!(
                "policy-verdict:{} {direction}",
                policy_match_type(f.policy_match_type)
            )
        }
        TYPE_CAPTURE => enum_name(f.debug_capture_point, |v| {
            DebugCapturePoint::try_from(v).ok().map(|p| p.as_str_name())
        }),
        TYPE_TRACE_SOCK => match SocketTranslationPoint::try_from(f.sock_xlate_point) {
            Ok(SocketTranslationPoint::SockXlatePointPostDirectionFwd) => "post-xlate-fwd".into(),
            Ok(SocketTranslationPoint::SockXlatePointPostDirectionRev) => "post-xlate-rev".into(),
            Ok(SocketTranslationPoint::SockXlatePointPreDirectionFwd) => "pre-xlate-fwd".into(),
            Ok(SocketTranslationPoint::SockXlatePointPreDirectionRev) => "pre-xlate-rev".into(),
            Ok(p) => p.as_str_name().to_owned(),
            Err(_) => f.sock_xlate_point.to_string(),
        },
        _ => "UNKNOWN".to_owned(),
    }
}

/// A trace observation point's name (`to-endpoint`), or its number.
fn trace_point(sub_type: i32) -> String {
    let point = sub_type as u8;
    crate::observe::filters::TRACE_POINTS
        .iter()
        .find(|(_, n)| *n == i32::from(point))
        .map_or_else(|| point.to_string(), |(name, _)| (*name).to_owned())
}

/// `policy_match_type` as `cilium monitor` names it.
fn policy_match_type(m: u32) -> &'static str {
    match m {
        0 => "none",
        1 => "L3-Only",
        2 => "L3-L4",
        3 => "L4-Only",
        4 => "all",
        5 => "L3-Proto",
        6 => "Proto-Only",
        _ => "unknown",
    }
}

/// The datapath's text for a drop reason code, or the code itself.
pub fn drop_reason(code: u8) -> String {
    let text = match code {
        0 => "Success",
        2 => "Invalid packet",
        3 => "Interface",
        4 => "Interface Decrypted",
        5 => "LB, sock cgroup: No backend slot entry found",
        6 => "LB, sock cgroup: No backend entry found",
        7 => "LB, sock cgroup: Reverse entry update failed",
        8 => "LB, sock cgroup: Reverse entry stale",
        9 => "Fragmented packet",
        10 => "Fragmented packet entry update failed",
        11 => "Missed tail call to custom program",
        130 => "Invalid source mac",
        131 => "Invalid destination mac",
        132 => "Invalid source ip",
        133 => "Policy denied",
        134 => "Invalid packet",
        135 => "CT: Truncated or invalid header",
        136 => "Fragmentation needed",
        137 => "CT: Unknown L4 protocol",
        138 => "CT: Can't create entry from packet",
        139 => "Unsupported L3 protocol",
        140 => "Missed tail call",
        141 => "Error writing to packet",
        142 => "Unknown L4 protocol",
        143 => "Unknown ICMPv4 code",
        144 => "Unknown ICMPv4 type",
        145 => "Unknown ICMPv6 code",
        146 => "Unknown ICMPv6 type",
        147 => "Error retrieving tunnel key",
        148 => "Error retrieving tunnel options",
        149 => "Invalid Geneve option",
        150 => "Unknown L3 target address",
        151 => "Stale or unroutable IP",
        152 => "No matching local container found",
        153 => "Error while correcting L3 checksum",
        154 => "Error while correcting L4 checksum",
        155 => "CT: Map insertion failed",
        156 => "Invalid IPv6 extension header",
        157 => "IP fragmentation not supported",
        158 => "Service backend not found",
        160 => "No tunnel/encapsulation endpoint (datapath BUG!)",
        161 => "NAT 46/64 not enabled",
        162 => "Reached EDT rate-limiting drop horizon",
        163 => "Unknown connection tracking state",
        164 => "Local host is unreachable",
        165 => "No configuration available to perform policy decision",
        166 => "Unsupported L2 protocol",
        167 => "No mapping for NAT masquerade",
        168 => "Unsupported protocol for NAT masquerade",
        169 => "FIB lookup failed",
        170 => "Encapsulation traffic is prohibited",
        171 => "Invalid identity",
        172 => "Unknown sender",
        173 => "NAT not needed",
        174 => "Is a ClusterIP",
        175 => "First logical datagram fragment not found",
        176 => "Forbidden ICMPv6 message",
        177 => "Denied by LB src range check",
        178 => "Socket lookup failed",
        179 => "Socket assign failed",
        180 => "Proxy redirection not supported for protocol",
        181 => "Policy denied by denylist",
        182 => "VLAN traffic disallowed by VLAN filter",
        183 => "Incorrect VNI from VTEP",
        184 => "Failed to update or lookup TC buffer",
        185 => "No SID was found for the IP address",
        186 => "SRv6 state was removed during tail call",
        187 => "L3 translation from IPv4 to IPv6 failed (NAT46)",
        188 => "L3 translation from IPv6 to IPv4 failed (NAT64)",
        189 => "Authentication required",
        190 => "No conntrack map found",
        191 => "No nat map found",
        192 => "Invalid ClusterID",
        193 => "Unsupported packet protocol for DSR encapsulation",
        194 => "No egress gateway found",
        195 => "Traffic is unencrypted",
        196 => "TTL exceeded",
        197 => "No node ID found",
        198 => "Rate limited",
        199 => "IGMP handled",
        200 => "IGMP subscribed",
        201 => "Multicast handled",
        202 => "Host datapath not ready",
        203 => "Endpoint policy program not available",
        204 => "No Egress IP configured",
        205 => "Punt to proxy",
        _ => return code.to_string(),
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_proto::flow::{CiliumEventType, Dns, Http, Layer7};

    #[test]
    fn names_identities() {
        assert_eq!(identity_label(0), "(unknown)");
        assert_eq!(identity_label(2), "(world)");
        assert_eq!(identity_label(6), "(remote-node)");
        assert_eq!(identity_label(12345), "(ID:12345)");
    }

    #[test]
    fn names_event_types() {
        let with = |t: i32, sub: i32| Flow {
            event_type: Some(CiliumEventType {
                r#type: t,
                sub_type: sub,
            }),
            ..Default::default()
        };
        assert_eq!(flow_type(&with(4, 0)), "to-endpoint");
        assert_eq!(flow_type(&with(4, 123)), "123");
        assert_eq!(flow_type(&with(1, 133)), "Policy denied");
        assert_eq!(flow_type(&with(1, 181)), "Policy denied by denylist");
        assert_eq!(flow_type(&with(1, 189)), "Authentication required");
        assert_eq!(flow_type(&with(1, 159)), "159");
        assert_eq!(flow_type(&Flow::default()), "UNKNOWN");
        let mut pv = with(5, 0);
        pv.policy_match_type = 2;
        pv.traffic_direction = TrafficDirection::Ingress as i32;
        assert_eq!(flow_type(&pv), "policy-verdict:L3-L4 INGRESS");
        pv.policy_match_type = 0;
        pv.traffic_direction = 0;
        assert_eq!(
            flow_type(&pv),
            "policy-verdict:none TRAFFIC_DIRECTION_UNKNOWN"
        );
        let l7 = |r: Option<layer7::Record>, t: L7FlowType| Flow {
            l7: Some(Layer7 {
                r#type: t as i32,
                latency_ns: 0,
                record: r,
            }),
            ..with(129, 0)
        };
        assert_eq!(
            flow_type(&l7(
                Some(layer7::Record::Http(Http::default())),
                L7FlowType::Response
            )),
            "http-response"
        );
        let dns = Dns {
            observation_source: "proxy".into(),
            ..Default::default()
        };
        assert_eq!(
            flow_type(&l7(Some(layer7::Record::Dns(dns)), L7FlowType::Request)),
            "dns-request proxy"
        );
        assert_eq!(flow_type(&l7(None, L7FlowType::Request)), "l7-request");
    }

    #[test]
    fn formats_policy_names() {
        let p = |name: &str, kind: &str| Policy {
            name: name.into(),
            kind: kind.into(),
            ..Default::default()
        };
        let (a, b, c) = (
            p("AllowHTTP", "CiliumNetworkPolicy"),
            p("", "X"),
            p("AllowDNS", "CiliumClusterwideNetworkPolicy"),
        );
        assert_eq!(policy_names(&[]), "");
        assert_eq!(policy_names(&[&b]), "");
        assert_eq!(
            policy_names(&[&a, &b, &c]),
            " BY AllowHTTP (CiliumNetworkPolicy), AllowDNS (CiliumClusterwideNetworkPolicy)"
        );
    }
}
