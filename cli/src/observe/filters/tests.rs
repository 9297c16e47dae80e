use clap::Parser;

use super::*;
use crate::observe::flags::FilterArgs;
use crate::observe::raw;

#[derive(Debug, Parser)]
struct T {
    #[command(flatten)]
    filters: FilterArgs,
}

/// Parses `args` like the command line does and builds the lists.
fn build(args: &[&str]) -> Result<FilterLists, FilterFlagError> {
    let argv = std::iter::once("weir").chain(args.iter().copied());
    let parsed = T::try_parse_from(argv).expect("clap accepts the flags");
    FilterBuilder::build(parsed.filters.ops.iter().map(|(f, v)| (*f, v.as_str())))
}

/// The lists as Hubble's `--print-raw-filters` YAML.
fn yaml(args: &[&str]) -> String {
    let lists = build(args).unwrap();
    raw::to_yaml(&lists.whitelist, &lists.blacklist)
}

fn err(args: &[&str]) -> String {
    build(args).unwrap_err().0
}

#[test]
fn hubble_documented_example() {
    assert_eq!(
        yaml(&["-t", "drop", "-n", "kube-system"]),
        "allowlist:\n    - '{\"source_pod\":[\"kube-system/\"],\"event_type\":[{\"type\":1}]}'\n    \
         - '{\"destination_pod\":[\"kube-system/\"],\"event_type\":[{\"type\":1}]}'\n"
    );
}

#[test]
fn no_flags_no_filters() {
    assert_eq!(build(&[]).unwrap(), FilterLists::default());
    assert_eq!(yaml(&[]), "{}\n");
}

#[test]
fn one_sided_flags_make_one_filter() {
    let lists = build(&[
        "--from-ip",
        "1.2.3.4",
        "--from-ip",
        "5.6.7.8",
        "--verdict",
        "DROPPED",
    ])
    .unwrap();
    assert_eq!(
        lists.whitelist,
        vec![FlowFilter {
            source_ip: vec!["1.2.3.4".into(), "5.6.7.8".into()],
            verdict: vec![flow::Verdict::Dropped as i32],
            ..Default::default()
        }]
    );
    assert!(lists.blacklist.is_empty());
}

#[test]
fn not_negates_only_the_next_flag() {
    let lists = build(&[
        "--from-ip",
        "1.2.3.4",
        "--from-ip",
        "5.6.7.8",
        "--not",
        "--to-ip",
        "5.5.5.5",
        "--verdict",
        "DROPPED",
        "-t",
        "l7",
    ])
    .unwrap();
    assert_eq!(
        lists.whitelist,
        vec![FlowFilter {
            source_ip: vec!["1.2.3.4".into(), "5.6.7.8".into()],
            verdict: vec![2],
            event_type: vec![EventTypeFilter {
                r#type: 129,
                match_sub_type: false,
                sub_type: 0
            }],
            ..Default::default()
        }]
    );
    assert_eq!(
        lists.blacklist,
        vec![FlowFilter {
            destination_ip: vec!["5.5.5.5".into()],
            ..Default::default()
        }]
    );
}

#[test]
fn two_sided_flags_make_left_and_right() {
    let lists = build(&[
        "--ip",
        "1.2.3.4",
        "--ip",
        "5.6.7.8",
        "--verdict",
        "DROPPED",
        "--not",
        "--pod",
        "deathstar",
        "--not",
        "--http-status",
        "200",
        "--http-method",
        "get",
        "--http-path",
        "/page/\\d+",
        "--node-name",
        "k8s*",
    ])
    .unwrap();
    let common = FlowFilter {
        verdict: vec![2],
        http_method: vec!["get".into()],
        http_path: vec!["/page/\\d+".into()],
        node_name: vec!["k8s*".into()],
        ..Default::default()
    };
    assert_eq!(
        lists.whitelist,
        vec![
            FlowFilter {
                source_ip: vec!["1.2.3.4".into(), "5.6.7.8".into()],
                ..common.clone()
            },
            FlowFilter {
                destination_ip: vec!["1.2.3.4".into(), "5.6.7.8".into()],
                ..common
            },
        ]
    );
    assert_eq!(
        lists.blacklist,
        vec![
            FlowFilter {
                source_pod: vec!["deathstar".into()],
                http_status_code: vec!["200".into()],
                ..Default::default()
            },
            FlowFilter {
                destination_pod: vec!["deathstar".into()],
                http_status_code: vec!["200".into()],
                ..Default::default()
            },
        ]
    );
}

#[test]
fn namespaces_prefix_pods_and_services() {
    assert_eq!(
        yaml(&["--pod", "web", "-n", "shop", "-n", "stage"]),
        "allowlist:\n    - '{\"source_pod\":[\"shop/web\",\"stage/web\"]}'\n    \
         - '{\"destination_pod\":[\"shop/web\",\"stage/web\"]}'\n"
    );
    assert_eq!(
        yaml(&["--from-namespace", "a", "--to-namespace", "b"]),
        "allowlist:\n    - '{\"source_pod\":[\"a/\"],\"destination_pod\":[\"b/\"]}'\n"
    );
    assert_eq!(
        yaml(&["--to-service", "users", "--from-namespace", "shop"]),
        "allowlist:\n    - '{\"source_pod\":[\"shop/\"],\"destination_service\":[\"users\"]}'\n"
    );
    assert_eq!(
        yaml(&["--service", "users", "-n", "shop"]),
        "allowlist:\n    - '{\"source_service\":[\"shop/users\"]}'\n    - '{\"destination_service\":[\"shop/users\"]}'\n"
    );
    assert_eq!(
        yaml(&["-A"]),
        "allowlist:\n    - '{\"source_pod\":[\"/\"]}'\n    - '{\"destination_pod\":[\"/\"]}'\n"
    );
    assert_eq!(
        yaml(&["--to-pod", "kube-system/coredns", "--from-all-namespaces"]),
        "allowlist:\n    - '{\"source_pod\":[\"/\"],\"destination_pod\":[\"kube-system/coredns\"]}'\n"
    );
}

#[test]
fn labels_identities_ports_workloads() {
    assert_eq!(
        yaml(&[
            "--label",
            "k1=v1,k2=v2",
            "-l",
            "k3",
            "--node-label",
            "io.cilium.egress-gateway"
        ]),
        "allowlist:\n    - '{\"source_label\":[\"k1=v1,k2=v2\",\"k3\"],\"node_labels\":[\"io.cilium.egress-gateway\"]}'\n    \
         - '{\"destination_label\":[\"k1=v1,k2=v2\",\"k3\"],\"node_labels\":[\"io.cilium.egress-gateway\"]}'\n"
    );
    assert_eq!(
        yaml(&["--identity", "world", "--identity", "12345"]),
        "allowlist:\n    - '{\"source_identity\":[2,12345]}'\n    - '{\"destination_identity\":[2,12345]}'\n"
    );
    assert_eq!(
        yaml(&["--to-identity", "host", "--from-identity", "0x10"]),
        "allowlist:\n    - '{\"source_identity\":[16],\"destination_identity\":[1]}'\n"
    );
    assert_eq!(
        yaml(&["--port", "80"]),
        "allowlist:\n    - '{\"source_port\":[\"80\"]}'\n    - '{\"destination_port\":[\"80\"]}'\n"
    );
    assert_eq!(
        yaml(&["--from-pod", "cilium", "--to-workload", "app"]),
        "allowlist:\n    - '{\"source_pod\":[\"cilium\"],\"destination_workload\":[{\"name\":\"app\"}]}'\n"
    );
    assert_eq!(
        yaml(&["--workload", "Deployment/web"]),
        "allowlist:\n    - '{\"source_workload\":[{\"name\":\"web\",\"kind\":\"Deployment\"}]}'\n    \
         - '{\"destination_workload\":[{\"name\":\"web\",\"kind\":\"Deployment\"}]}'\n"
    );
    for (name, id) in RESERVED_IDENTITIES {
        let lists = build(&["--from-identity", name]).unwrap();
        assert_eq!(lists.whitelist[0].source_identity, vec![*id], "{name}");
    }
}

#[test]
fn value_parsing_flags() {
    assert_eq!(
        yaml(&["--tcp-flags", "syn,ACK", "--tcp-flags", "fin"]),
        "allowlist:\n    - '{\"tcp_flags\":[{\"SYN\":true,\"ACK\":true},{\"FIN\":true}]}'\n"
    );
    assert_eq!(
        yaml(&[
            "--traffic-direction",
            "INGRESS",
            "-4",
            "--ip-version",
            "v6",
            "--ip-version",
            "none"
        ]),
        "allowlist:\n    - '{\"traffic_direction\":[1],\"ip_version\":[1,2,0]}'\n"
    );
    assert_eq!(
        yaml(&[
            "--drop-reason-desc",
            "POLICY_DENY",
            "--http-header",
            "x-user:a:b",
            "--encrypted",
            "--uuid",
            "u1"
        ]),
        "allowlist:\n    - '{\"uuid\":[\"u1\"],\"drop_reason_desc\":[181],\"http_header\":[{\"key\":\"x-user\",\"value\":\"a:b\"}],\"encrypted\":[true]}'\n"
    );
    assert_eq!(
        yaml(&[
            "--fqdn",
            "*.example.com",
            "--protocol",
            "tcp",
            "--interface",
            "eth0",
            "--snat-ip",
            "10.0.0.0/8"
        ]),
        "allowlist:\n    - '{\"source_ip_xlated\":[\"10.0.0.0/8\"],\"source_fqdn\":[\"*.example.com\"],\"interface\":[{\"name\":\"eth0\"}],\"protocol\":[\"tcp\"]}'\n    \
         - '{\"source_ip_xlated\":[\"10.0.0.0/8\"],\"destination_fqdn\":[\"*.example.com\"],\"interface\":[{\"name\":\"eth0\"}],\"protocol\":[\"tcp\"]}'\n"
    );
    assert_eq!(
        yaml(&[
            "--cluster",
            "c1",
            "--cel-expression",
            "true",
            "--trace-id",
            "t",
            "--ip-trace-id",
            "42"
        ]),
        "allowlist:\n    - '{\"source_cluster_name\":[\"c1\"],\"trace_id\":[\"t\"],\"ip_trace_id\":[42],\"experimental\":{\"cel_expression\":[\"true\"]}}'\n    \
         - '{\"destination_cluster_name\":[\"c1\"],\"trace_id\":[\"t\"],\"ip_trace_id\":[42],\"experimental\":{\"cel_expression\":[\"true\"]}}'\n"
    );
}

#[test]
fn event_types_and_subtypes() {
    let lists = build(&[
        "-t",
        "254",
        "-t",
        "255:127",
        "-t",
        "trace:to-endpoint",
        "-t",
        "trace:from-endpoint",
        "-t",
        "4:2",
        "-t",
        "agent",
        "-t",
        "agent:3",
        "-t",
        "agent:policy-updated",
        "-t",
        "policy-verdict",
        "-t",
        "drop:133",
    ])
    .unwrap();
    let e = |t: i32, sub: Option<i32>| EventTypeFilter {
        r#type: t,
        match_sub_type: sub.is_some(),
        sub_type: sub.unwrap_or(0),
    };
    assert_eq!(
        lists.whitelist[0].event_type,
        vec![
            e(254, None),
            e(255, Some(127)),
            e(4, Some(0)),
            e(4, Some(5)),
            e(4, Some(2)),
            e(130, None),
            e(130, Some(3)),
            e(130, Some(5)),
            e(5, None),
            e(1, Some(133)),
        ]
    );
    assert_eq!(
        err(&["-t", "some-invalid-type"]),
        "unable to parse type 'some-invalid-type', not a known type name and unable to parse as numeric value: \
         strconv.ParseUint: parsing \"some-invalid-type\": invalid syntax"
    );
    assert_eq!(
        err(&["-t", "trace:nowhere"]),
        "unable to parse event sub-type 'nowhere', not a known sub-type name and unable to parse as numeric value: \
         strconv.ParseUint: parsing \"nowhere\": invalid syntax"
    );
    assert!(build(&["-t", "agent:Policy updated"]).is_err());
}

#[test]
fn invalid_values_are_rejected_with_hubble_messages() {
    assert_eq!(
        err(&["--verdict", "dropped"]),
        "invalid --verdict value: dropped"
    );
    assert_eq!(
        err(&["--verdict", "BLOCKED"]),
        "invalid --verdict value: BLOCKED"
    );
    assert_eq!(
        err(&["--drop-reason-desc", "NOPE"]),
        "invalid --drop-reason-desc value: NOPE"
    );
    assert_eq!(
        err(&["--drop-reason-desc", ""]),
        "empty --drop-reason-desc value"
    );
    assert_eq!(err(&["--tcp-flags", "syn,xyz"]), "unknown tcp flag: xyz");
    assert_eq!(
        err(&["--traffic-direction", "Sideways"]),
        "sideways: invalid traffic direction, expected ingress or egress"
    );
    assert_eq!(
        err(&["--http-header", "nocolon"]),
        "invalid http-header value \"nocolon\", expected name:value"
    );
    assert_eq!(
        err(&["--ip-trace-id", "0"]),
        "invalid --ip-trace-id value; must be greater than 0"
    );
    assert_eq!(
        err(&["--ip-trace-id", "x"]),
        "invalid --ip-trace-id value: strconv.ParseUint: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        err(&["--identity", "nobody"]),
        "invalid security identity, expected one of [host world unmanaged health init remote-node \
         kube-apiserver ingress world-ipv4 world-ipv6] or a numeric value"
    );
    assert_eq!(
        err(&["--from-ip", "1.1.1.1", "--not"]),
        "trailing --not found in the arguments"
    );
    assert_eq!(
        err(&["--not", "--not", "--from-ip", "1.1.1.1"]),
        "consecutive --not statements"
    );
}

#[test]
fn conflicting_flags_are_rejected() {
    assert_eq!(
        err(&["--from-ip", "1.2.3.4", "--from-fqdn", "doesnt.work"]),
        "filters --from-fqdn and --from-ip cannot be combined"
    );
    assert_eq!(
        err(&["--from-service", "foo", "--service", "bar"]),
        "filters --service and --from-service cannot be combined"
    );
    assert_eq!(
        err(&["--from-label", "a", "--label", "b"]),
        "filters --label and --from-label cannot be combined"
    );
    assert_eq!(
        err(&["--to-port", "80", "--port", "81"]),
        "filters --port and --to-port cannot be combined"
    );
    assert_eq!(
        err(&["--encrypted", "--unencrypted"]),
        "filters --encrypted and --unencrypted cannot be combined"
    );

    let conflicts: &[(&str, &str)] = &[
        ("--port", "--to-port"),
        ("--port", "--from-port"),
        ("--identity", "--to-identity"),
        ("--identity", "--from-identity"),
        ("--workload", "--to-workload"),
        ("--workload", "--from-workload"),
        ("--fqdn", "--from-fqdn"),
        ("--fqdn", "--to-fqdn"),
        ("--ip", "--from-ip"),
        ("--ip", "--to-ip"),
        ("--label", "--from-label"),
        ("--label", "--to-label"),
        ("--service", "--from-service"),
        ("--service", "--to-service"),
        ("--pod", "--from-pod"),
        ("--pod", "--to-pod"),
        ("--namespace", "--from-namespace"),
        ("--namespace", "--to-namespace"),
        ("--ip", "--fqdn"),
        ("--ip", "--pod"),
        ("--ip", "--namespace"),
        ("--from-ip", "--from-pod"),
        ("--from-ip", "--namespace"),
        ("--to-ip", "--to-namespace"),
        ("--pod", "--fqdn"),
        ("--from-pod", "--namespace"),
        ("--to-pod", "--namespace"),
        ("--namespace", "--fqdn"),
        ("--namespace", "--from-service"),
        ("--namespace", "--to-service"),
        ("--from-namespace", "--from-fqdn"),
        ("--to-namespace", "--to-fqdn"),
    ];
    for (a, b) in conflicts {
        let value = |flag: &str| {
            if flag.contains("identity") {
                "world"
            } else {
                "foo"
            }
        };
        assert!(build(&[a, value(a), b, value(b)]).is_err(), "{a} {b}");
        assert!(build(&[b, value(b), a, value(a)]).is_err(), "{b} {a}");
    }
    for (a, b) in [
        ("--all-namespaces", "--from-all-namespaces"),
        ("--all-namespaces", "--to-ip"),
        ("--from-all-namespaces", "--fqdn"),
    ] {
        let value = |flag: &str| {
            if flag.contains("all-namespaces") {
                None
            } else {
                Some("foo")
            }
        };
        let mut args = vec![a];
        args.extend(value(a));
        args.push(b);
        args.extend(value(b));
        assert!(build(&args).is_err(), "{a} {b}");
    }
}

#[test]
fn conflicts_are_per_list() {
    assert!(build(&["--ip", "1.2.3.4", "--not", "--pod", "x"]).is_ok());
    assert!(build(&["--from-label", "a", "--not", "--label", "b"]).is_ok());
    let ok = [
        "--to-service",
        "foo",
        "--from-service",
        "bar",
        "--from-identity",
        "world",
        "--to-identity",
        "world",
        "--to-ip",
        "1.2.3.4",
        "--from-pod",
        "blib",
        "--from-port",
        "1172",
        "--to-port",
        "11245",
        "--workload",
        "buzz",
    ];
    assert!(build(&ok).is_ok());
    let ok = [
        "--service",
        "bar",
        "--from-identity",
        "world",
        "--to-identity",
        "world",
        "--pod",
        "blib",
        "--namespace",
        "test",
        "--from-port",
        "1172",
        "--to-port",
        "11245",
        "--workload",
        "buzz",
    ];
    assert!(build(&ok).is_ok());
}

#[test]
fn namespace_conflicts() {
    assert_eq!(
        err(&["--pod", "kube-system/x", "-n", "default"]),
        "namespace conflict: \"default\" does not contain \"kube-system/x\""
    );
    assert_eq!(
        err(&["--from-namespace", "a", "--from-pod", "b/x"]),
        "namespace conflict: \"a\" does not contain \"b/x\""
    );
    assert_eq!(
        err(&["--from-pod", "a/x", "--from-service", "b/svc"]),
        "namespace of service \"b/svc\" conflict with pod \"a\""
    );
    assert!(build(&["--from-pod", "a/x", "--from-service", "a/svc"]).is_ok());
    assert!(build(&["--pod", "default/x", "-n", "default"]).is_ok());
}
