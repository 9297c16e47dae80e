use super::*;

const CLUSTER: &str = "name: lab\npodCIDRs: [10.0.0.0/16]\nnodes:\n  - {name: n1, ips: [192.168.1.1]}\n  - {name: n2, ips: [192.168.1.2]}\n";
const WEB: &str =
    "name: web-0\nnode: n1\nlabels: {app: web}\nips: [10.0.1.1, 'fd00::11']\ninterface: lxc1\n";
const API: &str =
    "name: api-0\nnode: n2\nlabels: {app: api}\nips: [10.0.2.1, 'fd00::21']\ninterface: lxc2\n";

/// api-0 accepts web on 8080/TCP and ICMPv6 echo requests; a deny rule
/// drops UDP from everyone.
const POLICY: &str = r#"
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: api}
spec:
  endpointSelector: {matchLabels: {app: api}}
  ingress:
    - fromEndpoints: [{matchLabels: {app: web}}]
      toPorts: [{ports: [{port: "8080", protocol: TCP}]}]
    - icmps: [{fields: [{type: 128, family: IPv6}]}]
  ingressDeny:
    - fromEntities: [all]
      toPorts: [{ports: [{port: "0", protocol: UDP}]}]
"#;

fn inputs() -> Inputs {
    Inputs {
        set: PolicySet::parse_sources([("api.yaml", POLICY)]).unwrap(),
        state: ClusterState::from_sources(
            Some(("cluster.yaml", CLUSTER)),
            [("endpoints/web.yaml", WEB), ("endpoints/api.yaml", API)],
        )
        .unwrap(),
        origin: "from the given files".into(),
    }
}

fn ep(name: &str) -> Target {
    Target::Endpoint(name.into())
}

fn run(src: Target, dst: Target, dport: &str, node: &str) -> Result<TraceReport, String> {
    let options = Options {
        local_node: node.into(),
        allow_localhost: true,
        http_flow_headers: Vec::new(),
    };
    trace(&inputs(), &src, &dst, parse_dport(dport).unwrap(), &options).map_err(|e| e.to_string())
}

fn ingress(r: &TraceReport) -> (&'static str, Reason, Option<&'static str>, Vec<String>) {
    let d = r.ingress.as_ref().expect("an ingress decision");
    (d.verdict, d.reason, d.drop_reason, names(&d.policies))
}

#[test]
fn dport_values() {
    let ok = |s: &str| parse_dport(s).map(|d| (d.protocol, d.port, d.to_string()));
    assert_eq!(ok("80/TCP"), Ok((6, 80, "80/TCP".into())));
    assert_eq!(ok("80"), Ok((6, 80, "80/TCP".into())));
    assert_eq!(ok("53/udp"), Ok((17, 53, "53/UDP".into())));
    assert_eq!(ok("9/SCTP"), Ok((132, 9, "9/SCTP".into())));
    assert_eq!(ok("8/ICMP"), Ok((1, 8, "8/ICMP".into())));
    assert_eq!(ok("0/ICMP"), Ok((1, 0, "0/ICMP".into())));
    assert_eq!(ok("128/icmpv6"), Ok((58, 128, "128/ICMPv6".into())));
    assert_eq!(ok("ANY"), Ok((0, 0, "any".into())));
    assert_eq!(
        ok("80/GRE"),
        Err("unknown protocol `GRE`: use TCP, UDP, SCTP, ICMP or ICMPv6".into())
    );
    assert_eq!(
        ok("http"),
        Err("`http` is not a port number: expected PORT[/PROTOCOL] such as 80, 80/TCP, 53/UDP, 8/ICMP, 128/ICMPv6, or any".into())
    );
    assert_eq!(
        ok("70000/UDP"),
        Err("`70000` is not a port number: expected PORT[/PROTOCOL] such as 80, 80/TCP, 53/UDP, 8/ICMP, 128/ICMPv6, or any".into())
    );
    assert_eq!(
        ok("300/ICMP"),
        Err("ICMP type 300 is out of range (0-255)".into())
    );
    assert_eq!(
        ok("0"),
        Err("port 0 is not a destination port: use a port number, or any".into())
    );
}

#[test]
fn targets_are_checked_before_anything_is_read() {
    let labels = |l: &[&str], ns: Option<&str>| {
        target(
            Side::Src,
            &l.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &ns.map(str::to_owned),
            &None,
            &None,
        )
        .map_err(|e| (e.exit_code(), e.to_string()))
    };
    assert_eq!(
        labels(&["app=web", "k8s:tier=front"], Some("prod")),
        Ok(Target::Labels {
            labels: vec!["app=web".into(), "k8s:tier=front".into()],
            namespace: Some("prod".into())
        })
    );
    assert_eq!(
        labels(&["any:app=web"], None),
        Err((64, "invalid --src-labels: label `any:app=web` has source `any`: write pod labels as k=v (or k8s:k=v), other identities as reserved:NAME or cidr:PREFIX".into()))
    );
    assert_eq!(
        labels(&["=web"], None),
        Err((
            64,
            "invalid --src-labels: label `=web`: the key is empty".into()
        ))
    );
    assert_eq!(
        labels(&["reserved:host"], Some("default")),
        Err((
            64,
            "--src-namespace applies to pod labels, not to reserved: or cidr: labels".into()
        ))
    );
    assert_eq!(
        target(
            Side::Src,
            &[],
            &Some("prod".into()),
            &None,
            &Some("10.0.0.1".parse().unwrap())
        )
        .map_err(|e| e.to_string()),
        Err("--src-namespace applies to --src-labels".into())
    );
    let endpoint = |name: &str| {
        target(Side::Dst, &[], &None, &Some(name.to_owned()), &None).map_err(|e| e.to_string())
    };
    assert_eq!(endpoint("prod/web-0"), Ok(ep("prod/web-0")));
    assert_eq!(
        endpoint("a/b/c"),
        Err("invalid --dst-endpoint \"a/b/c\": use NAME or NAMESPACE/NAME".into())
    );
    assert_eq!(
        endpoint("/web"),
        Err("invalid --dst-endpoint \"/web\": use NAME or NAMESPACE/NAME".into())
    );
}

#[test]
fn decisions_and_reasons() {
    let r = run(ep("web-0"), ep("api-0"), "8080/TCP", "").unwrap();
    assert_eq!(r.verdict, "ALLOWED");
    assert_eq!(
        ingress(&r),
        (
            "ALLOWED",
            Reason::AllowRule,
            None,
            vec!["CiliumNetworkPolicy default/api".into()]
        )
    );
    let egress = r.egress.as_ref().unwrap();
    assert_eq!(
        (egress.verdict, egress.reason),
        ("ALLOWED", Reason::NotEnforced)
    );
    assert_eq!(r.source.node.as_deref(), Some("n1"));
    assert_eq!(r.source.address, Some("10.0.1.1".parse().unwrap()));

    let r = run(ep("web-0"), ep("api-0"), "9090", "").unwrap();
    assert_eq!(r.verdict, "DENIED");
    assert_eq!(
        ingress(&r),
        (
            "DENIED",
            Reason::DefaultDeny,
            Some("POLICY_DENIED"),
            vec!["CiliumNetworkPolicy default/api".into()]
        )
    );
    assert_eq!(r.ingress.as_ref().unwrap().drop_reason_code, 133);

    let r = run(ep("web-0"), ep("api-0"), "53/UDP", "").unwrap();
    assert_eq!(
        ingress(&r),
        (
            "DENIED",
            Reason::DenyRule,
            Some("POLICY_DENY"),
            vec!["CiliumNetworkPolicy default/api".into()]
        )
    );
    assert_eq!(r.ingress.as_ref().unwrap().drop_reason_code, 181);

    // The node itself: allow-localhost, and the node's address is `host` there.
    let host = Target::Ip("192.168.1.2".parse().unwrap());
    let r = run(host, ep("api-0"), "9090", "").unwrap();
    assert_eq!(
        ingress(&r),
        ("ALLOWED", Reason::AllowLocalhost, None, vec![])
    );
    assert_eq!(r.ingress.as_ref().unwrap().remote_identity, 1);
}

#[test]
fn icmpv6_traces_the_ipv6_addresses() {
    let r = run(ep("web-0"), ep("api-0"), "128/ICMPv6", "").unwrap();
    assert_eq!(r.source.address, Some("fd00::11".parse().unwrap()));
    assert_eq!(r.destination.address, Some("fd00::21".parse().unwrap()));
    assert_eq!(r.verdict, "ALLOWED");
    let r = run(ep("web-0"), ep("api-0"), "8/ICMP", "").unwrap();
    assert_eq!(r.destination.address, Some("10.0.2.1".parse().unwrap()));
    assert_eq!(r.verdict, "DENIED");
}

#[test]
fn node_limits_the_enforcement_points() {
    let r = run(ep("web-0"), ep("api-0"), "9090", "n1").unwrap();
    assert!(r.ingress.is_none());
    assert_eq!(r.verdict, "ALLOWED");
    let text = render_text(&r);
    assert!(
        text.contains("Evaluating as the agent on node n1: only its endpoints enforce.\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "Ingress of default/api-0: not enforced on node n1 (the endpoint runs on n2)\n"
        ),
        "{text}"
    );
    assert_eq!(
        run(ep("web-0"), ep("api-0"), "80", "n9").unwrap_err(),
        "--node n9: no such node in the cluster state"
    );
    assert_eq!(
        run(ep("web-1"), ep("api-0"), "80", "").unwrap_err(),
        "no endpoint `web-1` in the state directory"
    );
}

#[test]
fn label_sets_stand_for_identities() {
    let web = Target::Labels {
        labels: vec!["app=web".into()],
        namespace: None,
    };
    let r = run(web.clone(), ep("api-0"), "8080", "").unwrap();
    assert_eq!(r.verdict, "ALLOWED");
    assert_eq!(r.source.endpoint, None);
    assert_eq!(r.text.src_name, "[app=web] in namespace default");
    assert!(
        r.egress.is_some(),
        "a pod label set is an enforcement point"
    );

    let world = Target::Labels {
        labels: vec!["reserved:world".into()],
        namespace: None,
    };
    let r = run(world, ep("api-0"), "8080", "").unwrap();
    assert_eq!(r.source.identity, 2);
    assert_eq!(r.text.src_name, "[reserved:world]");
    assert!(r.egress.is_none());
    assert_eq!(r.verdict, "DENIED");
}
