//! Every error names file, document, policy, line/column and field, and says what to change.

use std::path::Path;

use weir_policy::{PolicyError, PolicySet};

fn load_err(path: &str) -> String {
    let dir = env!("CARGO_MANIFEST_DIR");
    let p = Path::new(dir).join(path);
    PolicySet::load_files([&p])
        .unwrap_err()
        .to_string()
        .replace(&format!("{dir}/"), "")
}

fn parse_err(text: &str) -> String {
    PolicySet::parse_str("p.yaml", text)
        .unwrap_err()
        .to_string()
}

const HEAD: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: x\nspec:\n  endpointSelector: {}\n";

#[test]
fn malformed_seed_says_exactly_what_to_change() {
    assert_eq!(
        load_err("testdata/invalid/001_frontend_to_backend_users.yaml"),
        "testdata/invalid/001_frontend_to_backend_users.yaml:2:1: document 1 (CiliumNetworkPolicy default/frontend-to-backend-users), apiVersion: apiVersion `cilium.io/v1alpha1` is not supported: use `cilium.io/v2`\n\
         testdata/invalid/001_frontend_to_backend_users.yaml:16:15: document 1 (CiliumNetworkPolicy default/frontend-to-backend-users), spec.ingress[0].toPorts[0].ports[0]: unknown field `number`: did you mean `port`? (expected one of `port`, `endPort`, `protocol`)"
    );
}

#[test]
fn grpc_rules_point_to_http() {
    assert_eq!(
        load_err("testdata/invalid/001_grpc_rules.yaml"),
        "testdata/invalid/001_grpc_rules.yaml:16:13: document 1 (CiliumNetworkPolicy default/user-service-grpc), spec.ingress[0].toPorts[0].rules: unknown field `grpc`: gRPC runs over HTTP/2, so write `http` rules with `method: POST` and `path: /package.Service/Method` (expected one of `http`, `kafka`, `dns`, `l7proto`, `l7`)"
    );
}

#[test]
fn messages() {
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{HEAD}  ingress:\n    - fromRequires: [{{matchLabels: {{env: prod}}}}]\n"),
            "p.yaml:8:7: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].fromRequires: `fromRequires` is deprecated in Cilium and not supported by weir: add the required labels to the selectors in `fromEndpoints` instead",
        ),
        (
            format!("{HEAD}  egress:\n    - toCIDRSet:\n        - cidrGroupRef: office\n"),
            "p.yaml:9:11: document 1 (CiliumNetworkPolicy default/x), spec.egress[0].toCIDRSet[0].cidrGroupRef: `cidrGroupRef` is not supported: weir has no CiliumCIDRGroup objects; list the prefix in `cidr` instead",
        ),
        (
            format!("{HEAD}  egress:\n    - toCIDRSet:\n        - cidr: 10.0.0.0/8\n          except: [192.168.0.0/16]\n"),
            "p.yaml:10:11: document 1 (CiliumNetworkPolicy default/x), spec.egress[0].toCIDRSet[0].except[0]: except `192.168.0.0/16` is not inside `10.0.0.0/8`",
        ),
        (
            format!("{HEAD}  ingress:\n    - fromEntities: [World]\n"),
            "p.yaml:8:7: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].fromEntities[0]: unknown entity `World`: did you mean `world`?",
        ),
        (
            format!("{HEAD}  ingress:\n    - toPorts:\n        - ports: [{{port: \"80\", protocol: TCP}}]\n          rules:\n            http: [{{path: \"/api/(\"}}]\n"),
            "p.yaml:11:13: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.http[0].path: `/api/(` is not a valid regular expression: unclosed group",
        ),
        (
            format!("{HEAD}  ingress:\n    - toPorts:\n        - ports: [{{port: \"9092\", protocol: TCP}}]\n          rules:\n            kafka:\n              - role: produce\n                apiKey: fetch\n"),
            "p.yaml:12:15: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.kafka[0]: `role` and `apiKey` are exclusive: a role already stands for a set of API keys",
        ),
        (
            format!("{HEAD}  egress:\n    - toPorts:\n        - ports: [{{port: \"53\", protocol: UDP}}]\n          rules:\n            dns: [{{matchName: \"*.example.com\"}}]\n"),
            "p.yaml:11:13: document 1 (CiliumNetworkPolicy default/x), spec.egress[0].toPorts[0].rules.dns[0].matchName: `*.example.com` contains `*`: names use letters, digits, `-`, `_` and `.` (use matchPattern for `*`)",
        ),
        (
            format!("{HEAD}  ingress:\n    - toPorts:\n        - ports: [{{port: \"80\"}}]\n          rules:\n            http: [{{method: GET}}]\n"),
            "p.yaml:11:13: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.http: L7 rules apply to TCP only, but the port is 80/ANY: set `protocol: TCP` on the port",
        ),
        (
            "apiVersion: cilium.io/v2\nkind: CiliumClusterwideNetworkPolicy\nmetadata:\n  name: x\n  namespace: prod\nspec:\n  endpointSelector: {}\n".to_string(),
            "p.yaml:5:3: document 1 (CiliumClusterwideNetworkPolicy x), metadata.namespace: a CiliumClusterwideNetworkPolicy is cluster-wide and has no namespace: remove `namespace: prod` (or use a CiliumNetworkPolicy)",
        ),
        (
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicies\nmetadata: {name: x}\n".to_string(),
            "p.yaml:2:1: document 1, kind: kind `CiliumNetworkPolicies` is not a policy kind: did you mean `CiliumNetworkPolicy`?",
        ),
        (
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  ingress: []\n".to_string(),
            "p.yaml:4:1: document 1 (CiliumNetworkPolicy default/x), spec: missing field `endpointSelector`: say which endpoints the rule applies to (`endpointSelector: {}` selects all)",
        ),
        (
            "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  endpointSelector:\n    matchLabels: [app]\n".to_string(),
            "p.yaml:6:18: document 1 (CiliumNetworkPolicy default/x), spec.endpointSelector.matchLabels: invalid type: sequence, expected a map",
        ),
        (
            format!("{HEAD}  ingress:\n    - fromEndpoints:\n        - matchExpressions: [{{key: app, operator: in, values: [a]}}]\n"),
            "p.yaml:9:11: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].fromEndpoints[0].matchExpressions[0].operator: unknown operator `in`: did you mean `In`?",
        ),
        (
            format!("{HEAD}  ingress:\n    - icmps: [{{fields: [{{type: Ping}}]}}]\n"),
            "p.yaml:8:7: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].icmps[0].fields[0].type: `Ping` is not an IPv4 ICMP type: use a number 0-255 or one of EchoReply, DestinationUnreachable, Redirect, Echo, EchoRequest, RouterAdvertisement, RouterSelection, TimeExceeded, ParameterProblem, Timestamp, TimestampReply, Photuris, ExtendedEchoRequest, ExtendedEchoReply",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x, namespace: prod}\nspec:\n  podSelector: {}\n  ingress:\n    - from:\n        - ipBlock: {cidr: 10.0.0.0/8}\n          podSelector: {}\n".to_string(),
            "p.yaml:8:9: document 1 (NetworkPolicy prod/x), spec.ingress[0].from[0]: `ipBlock` cannot be combined with `podSelector` or `namespaceSelector`: use two peers",
        ),
        (
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n  ingress:\n    - ports: [{port: 80, protocol: ANY}]\n".to_string(),
            "p.yaml:7:7: document 1 (NetworkPolicy default/x), spec.ingress[0].ports[0].protocol: protocol `ANY` is not valid in a NetworkPolicy: use TCP, UDP or SCTP",
        ),
        (
            "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec:\n  podSelector: {}\n".to_string(),
            "p.yaml:1:1: document 1 (NetworkPolicy default/x), apiVersion: apiVersion `extensions/v1beta1` is not supported: use `networking.k8s.io/v1`",
        ),
        (
            "kind: CiliumNetworkPolicy\nmetadata: {name: x}\nspec:\n  endpointSelector: {}\n  ingress:\n  - fromEndpoint: [{}]\n".to_string(),
            "p.yaml: document 1 (CiliumNetworkPolicy default/x), apiVersion: missing field `apiVersion`: use `cilium.io/v2`\n\
             p.yaml:6:5: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0]: unknown field `fromEndpoint`: did you mean `fromEndpoints`? (expected one of `fromEndpoints`, `fromRequires`, `fromCIDR`, `fromCIDRSet`, `fromEntities`, `fromGroups`, `fromNodes`, `toPorts`, `icmps`, `authentication`)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(&text), want, "\n{text}");
    }
}

#[test]
fn errors_in_later_documents_name_the_document_and_its_line() {
    let text = format!(
        "{HEAD}---\n# second\n{HEAD}  egress:\n    - toPorts: [{{ports: [{{port: \"99999\"}}]}}]\n"
    );
    assert_eq!(
        parse_err(&text),
        "p.yaml:16:7: document 2 (CiliumNetworkPolicy default/x), spec.egress[0].toPorts[0].ports[0].port: port `99999` is out of range: use 1-65535 (or 0 for every port)"
    );
    let syntax = format!("{HEAD}---\nkind: [\n");
    assert_eq!(
        parse_err(&syntax),
        "p.yaml:9:1: document 2: did not find expected node content, while parsing a flow node"
    );
}

#[test]
fn duplicates_across_files_name_both_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.yaml"), HEAD).unwrap();
    std::fs::write(dir.path().join("b.yaml"), format!("# again\n{HEAD}")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
    let err = PolicySet::load_dir(dir.path()).unwrap_err();
    let base = format!("{}/", dir.path().display());
    assert_eq!(
        err.to_string().replace(&base, ""),
        "b.yaml:5:3: document 1 (CiliumNetworkPolicy default/x), metadata.name: CiliumNetworkPolicy default/x is also defined in a.yaml (document 1): names are unique per kind and namespace"
    );
    assert!(matches!(err, PolicyError::Invalid(ref d) if d.len() == 1 && d[0].line == Some(5)));
}

#[test]
fn io_errors_name_the_file_and_missing_dirs_are_empty() {
    let err = PolicySet::load_files(["/nonexistent/p.yaml"])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("/nonexistent/p.yaml: "), "{err}");
    assert!(
        PolicySet::load_dir(Path::new("/nonexistent/dir"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn http_rules_the_kernel_cannot_enforce() {
    let port = |ports: &str, rules: &str| {
        format!(
            "{HEAD}  ingress:\n    - toPorts:\n        - ports: [{ports}]\n          rules:\n            http:\n{rules}"
        )
    };
    let cases: Vec<(String, &str)> = vec![
        (
            port(
                "{port: \"8000\", endPort: 8010, protocol: TCP}",
                "              - path: /\n",
            ),
            "p.yaml:11:13: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.http: HTTP rules need an exact port, not the range 8000-8010/TCP: list the ports one by one (or drop `endPort`)",
        ),
        (
            port(
                "{port: \"80\", protocol: TCP}",
                "              - headerMatches:\n                  - {name: X-A, value: b, mismatch: ADD}\n                  - {name: X-B, secret: {namespace: a, name: b}}\n",
            ),
            "p.yaml: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.http[0].headerMatches[0].mismatch: `mismatch: ADD` is not supported by weir's in-kernel HTTP matcher: header rewriting needs a proxy\n\
             p.yaml: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.http[0].headerMatches[1].secret: `secret` is not supported by weir's in-kernel HTTP matcher: header rewriting needs a proxy",
        ),
        (
            port(
                "{port: \"80\", protocol: TCP}",
                "              - host: '\\pL+\\.example\\.com'\n                headers: ['X-A:  b ', 'X B']\n",
            ),
            "p.yaml:12:17: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.http[0].host: `\\pL+\\.example\\.com` needs Unicode, but HTTP rules are byte regexes with Unicode disabled: use ASCII classes such as `[A-Za-z]` instead of `\\pL`, `\\w` under `(?u)` or Unicode case folding\n\
             p.yaml:13:17: document 1 (CiliumNetworkPolicy default/x), spec.ingress[0].toPorts[0].rules.http[0].headers[1]: `X B` is not a header: write `Name` or `Name: value`",
        ),
        (
            format!(
                "{HEAD}  ingressDeny:\n    - toPorts:\n        - ports: [{{port: \"80\", protocol: TCP}}]\n          rules:\n            http: [{{method: GET}}]\n"
            ),
            "p.yaml:10:11: document 1 (CiliumNetworkPolicy default/x), spec.ingressDeny[0].toPorts[0]: unknown field `rules`: deny rules cannot carry L7 rules (Cilium forbids them): deny the port at L4, or allow only the wanted requests with `rules.http` in an allow rule (expected one of `ports`)",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(parse_err(&text), want, "\n{text}");
    }
}
