//! The L7 decision for one call on a proxied connection: the client's egress rules and the
//! server's ingress rules, looked up the way the datapath looks them up (`weir_policy::lookup`)
//! in the policy enforced right now, so a policy change applies to the next call of a
//! connection that is already open.

use std::net::IpAddr;

use weir_policy::compiled::{Direction, EndpointPolicy, Identity, reserved};
use weir_policy::eval::{DropReason, Verdict};
use weir_policy::http::HttpRequest;
use weir_policy::lookup::lookup_direction;

use super::ProxyPolicy;
use crate::apply::EndpointRuntime;

/// One enforcement point's view of a connection: its local endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub direction: Direction,
    pub ifindex: u32,
    pub ep_id: u32,
}

/// The outcome for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDecision {
    pub allowed: bool,
    /// The point that decided: the first that denies (egress before ingress), else the last
    /// with HTTP rules, else the last one; `None` when neither end is a local endpoint.
    pub point: Option<Point>,
    /// The deciding point's HTTP rule set (0 = none) and, when allowed by it, the rule's index.
    pub l7_set: u32,
    pub rule: Option<usize>,
    /// Denied at L3/L4 (the policy changed since the connection was allowed, or the client is
    /// not a local endpoint).
    pub l4_denied: bool,
    /// Then by an explicit deny rule (POLICY_DENY) rather than by default (POLICY_DENIED).
    pub l4_deny_rule: bool,
    /// Then the denial's rule set.
    pub l4_rule_set: u32,
    pub src_identity: Identity,
    pub dst_identity: Identity,
}

fn local(policy: &ProxyPolicy, ip: IpAddr) -> Option<(&EndpointRuntime, &EndpointPolicy)> {
    let rt = policy.endpoint(ip)?;
    let ep = policy
        .compiled
        .endpoints
        .iter()
        .find(|p| p.namespace == rt.namespace && p.name == rt.name)?;
    Some((rt, ep))
}

/// How a handed-over connection may be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// From the client's address: the destination is a local endpoint, whose hook polices the
    /// connection by the client's identity and steers the replies back to the proxy.
    FromClient,
    /// From the node's address: the destination is outside the cluster (world or a CIDR
    /// identity); the client's egress policy is what applies.
    FromNode,
    /// Refused (the reason): neither end is a local endpoint, the connection is no longer
    /// allowed at L3/L4 at either end, or the destination is in the cluster but not local (its
    /// node would see the node's identity instead of the client's).
    Refused(&'static str),
}

/// Whether a connection handed over from `client` to `server:port` may be served, and how. A
/// local client's hook hands over connections by its egress rules or the server's ingress
/// rules; a node device's hook (`from_netdev`) hands over connections from other nodes and the
/// world to local servers by their ingress rules.
pub fn connection(policy: &ProxyPolicy, client: IpAddr, server: IpAddr, port: u16) -> Upstream {
    let Some((_, client_ep)) = local(policy, client) else {
        if policy.is_local_address(client) {
            // A local endpoint not (or no longer) attached: its egress rules cannot be checked.
            return Upstream::Refused("the client is a local endpoint that is not attached");
        }
        let Some((_, server_ep)) = local(policy, server) else {
            return Upstream::Refused("neither the client nor the server is a local endpoint");
        };
        let src_identity = policy.identity(client);
        if lookup_direction(&server_ep.ingress, src_identity, TCP, port).verdict == Verdict::Denied
        {
            return Upstream::Refused("the server's ingress policy denies the connection");
        }
        return Upstream::FromClient;
    };
    let dst_identity = policy.identity(server);
    if lookup_direction(&client_ep.egress, dst_identity, TCP, port).verdict == Verdict::Denied {
        return Upstream::Refused("the client's egress policy denies the connection");
    }
    if let Some((_, server_ep)) = local(policy, server) {
        let src_identity = policy.identity(client);
        if lookup_direction(&server_ep.ingress, src_identity, TCP, port).verdict == Verdict::Denied
        {
            return Upstream::Refused("the server's ingress policy denies the connection");
        }
        return Upstream::FromClient;
    }
    if dst_identity == reserved::WORLD || dst_identity >= reserved::LOCAL_SCOPE {
        Upstream::FromNode
    } else {
        Upstream::Refused("the destination is in the cluster but not on this node")
    }
}

/// Decides `req` sent from `client` to `server:port` over TCP, at each end that is a local
/// endpoint (the client's egress, then the server's ingress); with neither, or from a local
/// endpoint that is not attached (its egress rules cannot be checked), it is denied. A
/// denial's Hubble drop reason is POLICY_DENIED, as for the datapath's HTTP denials.
pub fn decide(
    policy: &ProxyPolicy,
    client: IpAddr,
    server: IpAddr,
    port: u16,
    req: &HttpRequest,
) -> CallDecision {
    let compiled = &policy.compiled;
    let src_identity = policy.identity(client);
    let dst_identity = policy.identity(server);
    let mut out = CallDecision {
        allowed: true,
        point: None,
        l7_set: 0,
        rule: None,
        l4_denied: false,
        l4_deny_rule: false,
        l4_rule_set: 0,
        src_identity,
        dst_identity,
    };
    let unattached = local(policy, client).is_none() && policy.is_local_address(client);
    if unattached || (local(policy, client).is_none() && local(policy, server).is_none()) {
        out.allowed = false;
        out.l4_denied = true;
        return out;
    }
    let points = [
        local(policy, client).map(|(rt, p)| (Direction::Egress, rt, &p.egress, dst_identity)),
        local(policy, server).map(|(rt, p)| (Direction::Ingress, rt, &p.ingress, src_identity)),
    ];
    let mut restricted = false;
    for (direction, rt, policy, remote) in points.into_iter().flatten() {
        let point = Point {
            direction,
            ifindex: rt.ifindex,
            ep_id: rt.ep_id,
        };
        let found = lookup_direction(policy, remote, TCP, port);
        if found.verdict == Verdict::Denied {
            return CallDecision {
                allowed: false,
                point: Some(point),
                l4_denied: true,
                l4_deny_rule: found.reason == DropReason::PolicyDeny,
                l4_rule_set: found.rule_set,
                ..out
            };
        }
        let set = found.entry.as_ref().map_or(0, |e| e.l7_rules);
        if set == 0 {
            if !restricted {
                out.point = Some(point);
            }
            continue;
        }
        // A set the compiler referenced always has tables; a missing one fails closed.
        let rule = compiled.http_tables.get(&set).and_then(|t| t.decide(req));
        out.point = Some(point);
        out.l7_set = set;
        out.rule = rule;
        restricted = true;
        if rule.is_none() {
            out.allowed = false;
            return out;
        }
    }
    out
}

const TCP: u8 = 6;

/// The request as the HTTP rules see it: the method, `:path` as the target, `:authority` as
/// the Host header, then every other header field. A `host` header counts only when there is
/// no `:authority` (HTTP/2 says the two must agree; the proxy does not let one stand in for
/// the other).
pub fn request_of(parts: &http::request::Parts) -> HttpRequest {
    let mut headers = Vec::with_capacity(parts.headers.len() + 1);
    let authority = parts.uri.authority();
    if let Some(authority) = authority {
        headers.push((b"host".to_vec(), authority.as_str().as_bytes().to_vec()));
    }
    for (name, value) in &parts.headers {
        if authority.is_some() && name == http::header::HOST {
            continue;
        }
        headers.push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
    HttpRequest {
        method: parts.method.as_str().as_bytes().to_vec(),
        target: parts
            .uri
            .path_and_query()
            .map_or(b"/".to_vec(), |p| p.as_str().as_bytes().to_vec()),
        version: 1,
        headers,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use weir_policy::compiled::{
        CompiledPolicy, DirectionPolicy, IpcacheEntry, MatchType, PolicyEntry, PolicyRef,
    };
    use weir_policy::http::{HttpMatch, HttpRuleEntry, HttpRuleSet, build_tables};

    use super::*;

    const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    fn set(paths: &[&str]) -> HttpRuleSet {
        HttpRuleSet {
            rules: paths
                .iter()
                .enumerate()
                .map(|(i, p)| HttpRuleEntry {
                    policy: PolicyRef {
                        kind: "CiliumNetworkPolicy".into(),
                        namespace: "default".into(),
                        name: "grpc".into(),
                    },
                    location: format!("spec.ingress[0].toPorts[0].rules.http[{i}]"),
                    rule: HttpMatch {
                        method: Some("POST".into()),
                        path: Some((*p).into()),
                        ..Default::default()
                    },
                })
                .collect(),
        }
    }

    fn allow(identity: u32, l7_rules: u32) -> PolicyEntry {
        PolicyEntry {
            identity,
            protocol: 6,
            port: 50051,
            port_prefix_len: 16,
            deny: false,
            audit: false,
            l7_rules,
            match_type: MatchType::L3L4,
            rule_set: 9,
        }
    }

    fn endpoint(
        name: &str,
        identity: u32,
        ingress: Vec<PolicyEntry>,
        egress: Vec<PolicyEntry>,
    ) -> EndpointPolicy {
        let dir = |entries: Vec<PolicyEntry>| DirectionPolicy {
            enforced: !entries.is_empty(),
            selecting: 5,
            entries,
        };
        EndpointPolicy {
            namespace: "default".into(),
            name: name.into(),
            interface: format!("lxc-{name}"),
            identity,
            ingress: dir(ingress),
            egress: dir(egress),
        }
    }

    /// client (identity 100, ifindex 11) and server (identity 200, ifindex 12), both local.
    fn status(
        client: EndpointPolicy,
        server: EndpointPolicy,
        sets: &[(u32, HttpRuleSet)],
    ) -> ProxyPolicy {
        let mut compiled = CompiledPolicy {
            endpoints: vec![client, server],
            ipcache: vec![
                IpcacheEntry {
                    prefix: "10.0.0.1/32".parse().unwrap(),
                    identity: 100,
                },
                IpcacheEntry {
                    prefix: "10.0.0.2/32".parse().unwrap(),
                    identity: 200,
                },
            ],
            ..Default::default()
        };
        for (id, s) in sets {
            compiled.http_rule_sets.insert(*id, s.clone());
            compiled
                .http_tables
                .insert(*id, build_tables(s, &[]).unwrap());
        }
        let rt = |name: &str, ifindex: u32, ip: IpAddr| EndpointRuntime {
            namespace: "default".into(),
            name: name.into(),
            interface: format!("lxc-{name}"),
            ifindex,
            ep_id: ifindex,
            ips: vec![ip],
        };
        ProxyPolicy::new(
            compiled,
            vec![rt("client", 11, CLIENT), rt("server", 12, SERVER)],
        )
    }

    fn call(path: &str) -> HttpRequest {
        HttpRequest {
            method: b"POST".to_vec(),
            target: path.as_bytes().to_vec(),
            version: 1,
            headers: vec![(b"host".to_vec(), b"server:50051".to_vec())],
        }
    }

    const GET: &str = "/com.example.catalog.ProductService/GetProduct";
    const UPDATE: &str = "/com.example.catalog.ProductService/UpdateStock";

    #[test]
    fn the_servers_ingress_rules_decide_each_call() {
        let st = status(
            endpoint("client", 100, vec![], vec![]),
            endpoint("server", 200, vec![allow(100, 1)], vec![]),
            &[(1, set(&[GET]))],
        );
        let ok = decide(&st, CLIENT, SERVER, 50051, &call(GET));
        assert!(ok.allowed);
        assert_eq!((ok.l7_set, ok.rule), (1, Some(0)));
        assert_eq!(ok.point.unwrap().direction, Direction::Ingress);
        assert_eq!(ok.point.unwrap().ifindex, 12);
        assert_eq!((ok.src_identity, ok.dst_identity), (100, 200));
        let denied = decide(&st, CLIENT, SERVER, 50051, &call(UPDATE));
        assert!(!denied.allowed && !denied.l4_denied);
        assert_eq!((denied.l7_set, denied.rule), (1, None));
        // Another port has no HTTP rules and is not allowed at all.
        let other = decide(&st, CLIENT, SERVER, 50052, &call(GET));
        assert!(!other.allowed && other.l4_denied);
        assert_eq!(other.l4_rule_set, 5);
    }

    #[test]
    fn egress_rules_deny_first_and_both_ends_must_allow() {
        let st = status(
            endpoint("client", 100, vec![], vec![allow(200, 2)]),
            endpoint("server", 200, vec![allow(0, 1)], vec![]),
            &[(1, set(&[GET, UPDATE])), (2, set(&[UPDATE]))],
        );
        let denied = decide(&st, CLIENT, SERVER, 50051, &call(GET));
        assert!(!denied.allowed);
        assert_eq!(denied.point.unwrap().direction, Direction::Egress);
        assert_eq!(denied.l7_set, 2);
        let ok = decide(&st, CLIENT, SERVER, 50051, &call(UPDATE));
        assert!(ok.allowed);
        // The last point with HTTP rules is reported.
        assert_eq!(ok.point.unwrap().direction, Direction::Ingress);
        assert_eq!((ok.l7_set, ok.rule), (1, Some(1)));
    }

    #[test]
    fn no_policy_or_an_unknown_party_is_refused() {
        let empty = ProxyPolicy::default();
        let d = decide(&empty, CLIENT, SERVER, 50051, &call(GET));
        assert!(!d.allowed && d.l4_denied);
        assert!(matches!(
            connection(&empty, CLIENT, SERVER, 50051),
            Upstream::Refused(_)
        ));
        let st = status(
            endpoint("client", 100, vec![], vec![]),
            endpoint("server", 200, vec![allow(100, 1)], vec![]),
            &[(1, set(&[GET]))],
        );
        // A client outside the cluster (world) that the server's ingress does not allow.
        let stranger: IpAddr = "10.0.0.9".parse().unwrap();
        let d = decide(&st, stranger, SERVER, 50051, &call(GET));
        assert!(!d.allowed && d.l4_denied);
        assert_eq!(d.point.unwrap().direction, Direction::Ingress);
        assert_eq!(
            connection(&st, stranger, SERVER, 50051),
            Upstream::Refused("the server's ingress policy denies the connection")
        );
        // Neither end local.
        assert!(!decide(&st, stranger, stranger, 50051, &call(GET)).allowed);
        assert_eq!(
            connection(&st, stranger, stranger, 50051),
            Upstream::Refused("neither the client nor the server is a local endpoint")
        );
    }

    #[test]
    fn a_client_on_another_node_is_decided_by_the_servers_ingress_rules() {
        let mut st = status(
            endpoint("client", 100, vec![], vec![]),
            endpoint("server", 200, vec![allow(300, 1)], vec![]),
            &[(1, set(&[GET]))],
        );
        st.compiled.ipcache.push(IpcacheEntry {
            prefix: "10.0.1.5/32".parse().unwrap(),
            identity: 300,
        });
        let remote: IpAddr = "10.0.1.5".parse().unwrap();
        assert_eq!(connection(&st, remote, SERVER, 50051), Upstream::FromClient);
        let ok = decide(&st, remote, SERVER, 50051, &call(GET));
        assert!(ok.allowed);
        assert_eq!((ok.src_identity, ok.dst_identity), (300, 200));
        assert_eq!(ok.point.unwrap().direction, Direction::Ingress);
        let denied = decide(&st, remote, SERVER, 50051, &call(UPDATE));
        assert!(!denied.allowed && !denied.l4_denied);
        assert_eq!((denied.l7_set, denied.rule), (1, None));
        // The local client (identity 100) is not allowed at all.
        assert_eq!(
            connection(&st, CLIENT, SERVER, 50051),
            Upstream::Refused("the server's ingress policy denies the connection")
        );
        // A local endpoint that is not attached (yet, or any more) is no remote client, even
        // with an identity the server allows.
        let idle: IpAddr = "10.0.0.3".parse().unwrap();
        st.compiled.ipcache.push(IpcacheEntry {
            prefix: "10.0.0.3/32".parse().unwrap(),
            identity: 300,
        });
        let mut endpoints = st.endpoints.clone();
        endpoints.push(EndpointRuntime {
            namespace: "default".into(),
            name: "idle".into(),
            interface: "lxc-idle".into(),
            ifindex: 0,
            ep_id: 0,
            ips: vec![idle],
        });
        let st = ProxyPolicy::new(st.compiled.clone(), endpoints);
        assert_eq!(
            connection(&st, idle, SERVER, 50051),
            Upstream::Refused("the client is a local endpoint that is not attached")
        );
        assert!(!decide(&st, idle, SERVER, 50051, &call(GET)).allowed);
        assert!(decide(&st, remote, SERVER, 50051, &call(GET)).allowed);
    }

    #[test]
    fn connections_are_checked_at_l4_and_leave_from_the_client_or_the_node() {
        let mut st = status(
            endpoint("client", 100, vec![], vec![]),
            endpoint("server", 200, vec![allow(100, 1)], vec![]),
            &[(1, set(&[GET]))],
        );
        assert_eq!(connection(&st, CLIENT, SERVER, 50051), Upstream::FromClient);
        assert_eq!(
            connection(&st, CLIENT, SERVER, 50052),
            Upstream::Refused("the server's ingress policy denies the connection")
        );
        // Outside the cluster (world): from the node. A cluster identity on another node:
        // refused, its hook would see the node instead of the client.
        let world: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(connection(&st, CLIENT, world, 443), Upstream::FromNode);
        st.compiled.ipcache.push(IpcacheEntry {
            prefix: "10.0.1.5/32".parse().unwrap(),
            identity: 300,
        });
        assert_eq!(
            connection(&st, CLIENT, "10.0.1.5".parse().unwrap(), 50051),
            Upstream::Refused("the destination is in the cluster but not on this node")
        );
        // The client's own egress default deny.
        st.compiled.endpoints[0].egress.enforced = true;
        assert_eq!(
            connection(&st, CLIENT, SERVER, 50051),
            Upstream::Refused("the client's egress policy denies the connection")
        );
    }

    #[test]
    fn a_host_header_does_not_stand_in_for_the_authority() {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("http://catalog:50051/x.Y/Z")
            .header("host", "allowed.example")
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(
            request_of(&parts).headers,
            vec![(b"host".to_vec(), b"catalog:50051".to_vec())]
        );
    }

    #[test]
    fn requests_carry_authority_as_host_and_every_header() {
        let (parts, ()) = http::Request::builder()
            .method("POST")
            .uri("http://catalog:50051/com.example.catalog.ProductService/GetProduct")
            .header("content-type", "application/grpc")
            .body(())
            .unwrap()
            .into_parts();
        let req = request_of(&parts);
        assert_eq!(req.method, b"POST");
        assert_eq!(req.target, GET.as_bytes());
        assert_eq!(
            req.headers,
            vec![
                (b"host".to_vec(), b"catalog:50051".to_vec()),
                (b"content-type".to_vec(), b"application/grpc".to_vec())
            ]
        );
    }
}
