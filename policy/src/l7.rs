//! Validation of L7 rules (HTTP, Kafka, DNS, generic `l7proto`) and DNS name selectors.
//! HTTP rules are translated into `http::HttpMatch`es, which the datapath enforces; the others
//! are parsed and checked, and until they are enforced the compiler allows their ports at L4
//! and reports a notice.

use crate::http::{self, HeaderMatch, HttpMatch};
use crate::model::{HttpRule as ModelHttpRule, PortMatch, PortSpec, Protocol};
use crate::schema::{FqdnSelector, HttpRule, KafkaRule, L7Rules};
use crate::translate::Ctx;

/// Which kind of L7 rules a `rules` block holds.
pub(crate) struct L7Kind {
    /// For messages: `HTTP`, `Kafka`, `DNS`, ``l7proto `x` ``.
    pub name: String,
    /// The field under `rules`: `http`, `kafka`, `dns`, `l7proto`.
    pub field: &'static str,
    /// The HTTP rules, translated (empty for the other kinds).
    pub http: Vec<ModelHttpRule>,
}

/// Validates a `rules` block for the given ports; `None` when it holds no rules.
pub(crate) fn validate(
    rules: &L7Rules,
    ports: &[PortSpec],
    ingress: bool,
    path: &str,
    ctx: &mut Ctx,
) -> Option<L7Kind> {
    let mut kinds = Vec::new();
    if rules.http.is_some() {
        kinds.push("http");
    }
    if rules.kafka.is_some() {
        kinds.push("kafka");
    }
    if rules.dns.is_some() {
        kinds.push("dns");
    }
    if rules.l7proto.is_some() {
        kinds.push("l7proto");
    }
    if rules.l7.is_some() && rules.l7proto.is_none() {
        ctx.error(
            format!("{path}.l7"),
            "`l7` rules need `l7proto` naming the protocol parser",
        );
    }
    if kinds.len() > 1 {
        ctx.error(
            path,
            format!(
                "one `rules` block holds one kind of L7 rules, not {}: split the port rule",
                kinds.join(" and ")
            ),
        );
        return None;
    }
    let kind = *kinds.first()?;
    for spec in ports {
        let field = format!("{path}.{kind}");
        if spec.port == PortMatch::All {
            ctx.error(
                &field,
                format!("L7 rules need a specific port, not every port ({spec})"),
            );
        }
        let tcp_only = kind != "dns";
        if tcp_only && spec.protocol != Protocol::Tcp {
            ctx.error(
                &field,
                format!(
                    "L7 rules apply to TCP only, but the port is {spec}: set `protocol: TCP` on the port"
                ),
            );
        }
        if kind == "http"
            && let PortMatch::Range(first, last) = spec.port
            && first != last
        {
            ctx.error(
                &field,
                format!(
                    "HTTP rules need an exact port, not the range {spec}: list the ports one by \
                     one (or drop `endPort`)"
                ),
            );
        }
    }
    match kind {
        "http" => {
            let mut http = Vec::new();
            for (i, r) in rules.http.iter().flatten().enumerate() {
                let location = format!("{path}.http[{i}]");
                if let Some(rule) = http_rule(r, &location, ctx) {
                    http.push(ModelHttpRule { location, rule });
                }
            }
            Some(L7Kind {
                name: "HTTP".into(),
                field: "http",
                http,
            })
        }
        "kafka" => {
            for (i, r) in rules.kafka.iter().flatten().enumerate() {
                kafka_rule(r, &format!("{path}.kafka[{i}]"), ctx);
            }
            Some(L7Kind {
                name: "Kafka".into(),
                field: "kafka",
                http: Vec::new(),
            })
        }
        "dns" => {
            if ingress {
                ctx.error(
                    format!("{path}.dns"),
                    "DNS rules are only allowed on egress (they filter the endpoint's queries)",
                );
            }
            if ports.is_empty() {
                ctx.error(
                    format!("{path}.dns"),
                    "DNS rules need the DNS port listed in `ports` (usually 53)",
                );
            }
            for (i, r) in rules.dns.iter().flatten().enumerate() {
                fqdn_selector(r, &format!("{path}.dns[{i}]"), ctx);
            }
            Some(L7Kind {
                name: "DNS".into(),
                field: "dns",
                http: Vec::new(),
            })
        }
        _ => {
            let proto = rules.l7proto.clone().unwrap_or_default();
            if proto.trim().is_empty() {
                ctx.error(format!("{path}.l7proto"), "`l7proto` is empty");
            }
            Some(L7Kind {
                name: format!("`{proto}` (l7proto)"),
                field: "l7proto",
                http: Vec::new(),
            })
        }
    }
}

/// A `method`/`path`/`host` regex: `None` when absent or empty (no restriction, as in Cilium).
fn http_regex(value: Option<&String>, field: &str, path: &str, ctx: &mut Ctx) -> Option<String> {
    let v = value.filter(|v| !v.is_empty())?;
    if let Err(message) = http::check_regex(v) {
        ctx.error(format!("{path}.{field}"), message);
    }
    Some(v.clone())
}

/// A header value a request can carry after trimming; `what` names it in messages.
fn check_header_value(value: &str, field: &str, ctx: &mut Ctx) {
    if value
        .bytes()
        .any(|b| b == b'\r' || b == b'\n' || (b < 0x20 && b != b'\t') || b == 0x7f)
    {
        ctx.error(
            field,
            format!(
                "`{}` contains a control character: no request header can carry it",
                value.escape_debug()
            ),
        );
    } else if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        ctx.error(
            field,
            format!(
                "`{value}` starts or ends with whitespace, which is never part of a header value \
                 (values are compared without it): remove it"
            ),
        );
    }
}

const NEEDS_PROXY: &str =
    "is not supported by weir's in-kernel HTTP matcher: header rewriting needs a proxy";

/// Validates and translates one HTTP rule; `None` when it has errors.
fn http_rule(r: &HttpRule, path: &str, ctx: &mut Ctx) -> Option<HttpMatch> {
    let before = ctx.problems.len();
    let method = http_regex(r.method.as_ref(), "method", path, ctx);
    let target = http_regex(r.path.as_ref(), "path", path, ctx);
    let host = http_regex(r.host.as_ref(), "host", path, ctx);
    let mut headers = Vec::new();
    for (i, h) in r.headers.iter().flatten().enumerate() {
        let field = format!("{path}.headers[{i}]");
        let (name, value) = match h.split_once(':') {
            Some((n, v)) => (n.trim(), Some(v.trim_matches([' ', '\t']))),
            None => (h.trim(), None),
        };
        if name.is_empty() || !name.chars().all(is_token_char) {
            ctx.error(
                &field,
                format!("`{h}` is not a header: write `Name` or `Name: value`"),
            );
            continue;
        }
        if let Some(v) = value {
            check_header_value(v, &field, ctx);
        }
        headers.push(HeaderMatch {
            name: name.to_string(),
            value: value.map(str::to_string),
            log_only: false,
        });
    }
    for (i, m) in r.header_matches.iter().flatten().enumerate() {
        let p = format!("{path}.headerMatches[{i}]");
        if m.name.is_empty() || !m.name.chars().all(is_token_char) {
            ctx.error(
                format!("{p}.name"),
                format!("`{}` is not a header name", m.name),
            );
        }
        if m.secret.is_some() {
            ctx.error(format!("{p}.secret"), format!("`secret` {NEEDS_PROXY}"));
        }
        let log_only = match m.mismatch.as_deref() {
            None | Some("") => false,
            Some("LOG") => true,
            Some(action @ ("ADD" | "DELETE" | "REPLACE")) => {
                ctx.error(
                    format!("{p}.mismatch"),
                    format!("`mismatch: {action}` {NEEDS_PROXY}"),
                );
                false
            }
            Some(action) => {
                ctx.error(
                    format!("{p}.mismatch"),
                    format!("unknown mismatch action `{action}`: use LOG, ADD, DELETE or REPLACE"),
                );
                false
            }
        };
        if let Some(v) = &m.value {
            check_header_value(v, &format!("{p}.value"), ctx);
        }
        headers.push(HeaderMatch {
            name: m.name.clone(),
            value: m.value.clone(),
            log_only,
        });
    }
    (ctx.problems.len() == before).then_some(HttpMatch {
        method,
        path: target,
        host,
        headers,
    })
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// Kafka API keys by name (Kafka protocol numbering).
pub(crate) const KAFKA_API_KEYS: &[(&str, i16)] = &[
    ("produce", 0),
    ("fetch", 1),
    ("offsets", 2),
    ("metadata", 3),
    ("leaderandisr", 4),
    ("stopreplica", 5),
    ("updatemetadata", 6),
    ("controlledshutdown", 7),
    ("offsetcommit", 8),
    ("offsetfetch", 9),
    ("findcoordinator", 10),
    ("joingroup", 11),
    ("heartbeat", 12),
    ("leavegroup", 13),
    ("syncgroup", 14),
    ("describegroups", 15),
    ("listgroups", 16),
    ("saslhandshake", 17),
    ("apiversions", 18),
    ("createtopics", 19),
    ("deletetopics", 20),
    ("deleterecords", 21),
    ("initproducerid", 22),
    ("offsetforleaderepoch", 23),
    ("addpartitionstotxn", 24),
    ("addoffsetstotxn", 25),
    ("endtxn", 26),
    ("writetxnmarkers", 27),
    ("txnoffsetcommit", 28),
    ("describeacls", 29),
    ("createacls", 30),
    ("deleteacls", 31),
    ("describeconfigs", 32),
    ("alterconfigs", 33),
];

fn kafka_rule(r: &KafkaRule, path: &str, ctx: &mut Ctx) {
    let role = r.role.as_deref().filter(|s| !s.is_empty());
    let api_key = r.api_key.as_deref().filter(|s| !s.is_empty());
    if role.is_some() && api_key.is_some() {
        ctx.error(
            path,
            "`role` and `apiKey` are exclusive: a role already stands for a set of API keys",
        );
    }
    if let Some(role) = role
        && !matches!(role.to_ascii_lowercase().as_str(), "produce" | "consume")
    {
        ctx.error(
            format!("{path}.role"),
            format!("unknown Kafka role `{role}`: use `produce` or `consume`"),
        );
    }
    if let Some(key) = api_key {
        let lower = key.to_ascii_lowercase();
        if !KAFKA_API_KEYS.iter().any(|(n, _)| *n == lower) {
            let names: Vec<String> = KAFKA_API_KEYS.iter().map(|(n, _)| n.to_string()).collect();
            let hint = match crate::yaml::suggest(&lower, &names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "use a Kafka API key name such as `produce`, `fetch` or `metadata`".into(),
            };
            ctx.error(
                format!("{path}.apiKey"),
                format!("unknown Kafka apiKey `{key}`: {hint}"),
            );
        }
    }
    if let Some(v) = &r.api_version
        && !v.0.is_empty()
        && v.0.parse::<i16>().map_or(true, |n| n < 0)
    {
        ctx.error(
            format!("{path}.apiVersion"),
            format!(
                "Kafka apiVersion `{}` is not a version number (0-32767)",
                v.0
            ),
        );
    }
    if let Some(topic) = r.topic.as_deref().filter(|s| !s.is_empty()) {
        if topic.len() > 249 {
            ctx.error(
                format!("{path}.topic"),
                format!(
                    "Kafka topic names have at most 249 characters, this one has {}",
                    topic.len()
                ),
            );
        } else if topic == "." || topic == ".." {
            ctx.error(
                format!("{path}.topic"),
                format!("`{topic}` is not a valid Kafka topic name"),
            );
        } else if let Some(c) = topic
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            ctx.error(
                format!("{path}.topic"),
                format!(
                    "Kafka topic `{topic}` contains `{c}`: topic names use a-z, A-Z, 0-9, `.`, `_` and `-`"
                ),
            );
        }
    }
}

/// A DNS name selector (`toFQDNs` entries and `rules.dns`).
pub(crate) fn fqdn_selector(s: &FqdnSelector, path: &str, ctx: &mut Ctx) {
    match (&s.match_name, &s.match_pattern) {
        (Some(_), Some(_)) => ctx.error(path, "set either `matchName` or `matchPattern`, not both"),
        (None, None) => ctx.error(path, "set `matchName` or `matchPattern`"),
        (Some(name), None) => dns_text(name, false, &format!("{path}.matchName"), ctx),
        (None, Some(pattern)) => dns_text(pattern, true, &format!("{path}.matchPattern"), ctx),
    }
}

fn dns_text(text: &str, pattern: bool, path: &str, ctx: &mut Ctx) {
    if text.is_empty() {
        ctx.error(path, "the name is empty");
        return;
    }
    if text.len() > 255 {
        ctx.error(
            path,
            format!(
                "DNS names have at most 255 characters, this one has {}",
                text.len()
            ),
        );
        return;
    }
    let allowed = |c: char| {
        c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') || (pattern && c == '*')
    };
    if let Some(c) = text.chars().find(|c| !allowed(*c)) {
        let what = if pattern {
            "patterns use letters, digits, `-`, `_`, `.` and `*`"
        } else {
            "names use letters, digits, `-`, `_` and `.` (use matchPattern for `*`)"
        };
        ctx.error(path, format!("`{text}` contains `{c}`: {what}"));
        return;
    }
    if pattern {
        let body = text.strip_prefix("**.").unwrap_or(text);
        if body.contains("**") {
            ctx.error(
                path,
                format!("`{text}`: `**` is only allowed as a leading `**.` (one or more labels)"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PolicyKind;
    use crate::schema::IntOrString;

    fn problems(f: impl FnOnce(&mut Ctx)) -> Vec<String> {
        let mut ctx = Ctx::new(PolicyKind::CiliumNetworkPolicy, "default");
        f(&mut ctx);
        ctx.problems
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect()
    }

    #[test]
    fn kafka() {
        let bad = KafkaRule {
            role: Some("produce".into()),
            api_key: Some("fetch".into()),
            api_version: Some(IntOrString("x".into())),
            client_id: None,
            topic: Some("a/b".into()),
        };
        assert_eq!(
            problems(|c| kafka_rule(&bad, "r", c)),
            vec![
                "r: `role` and `apiKey` are exclusive: a role already stands for a set of API keys",
                "r.apiVersion: Kafka apiVersion `x` is not a version number (0-32767)",
                "r.topic: Kafka topic `a/b` contains `/`: topic names use a-z, A-Z, 0-9, `.`, `_` and `-`",
            ]
        );
        let key = KafkaRule {
            api_key: Some("fetchh".into()),
            ..Default::default()
        };
        assert_eq!(
            problems(|c| kafka_rule(&key, "r", c)),
            vec!["r.apiKey: unknown Kafka apiKey `fetchh`: did you mean `fetch`?"]
        );
    }

    #[test]
    fn dns_and_http() {
        let both = FqdnSelector {
            match_name: Some("a".into()),
            match_pattern: Some("b".into()),
        };
        let star = FqdnSelector {
            match_name: Some("*.cilium.io".into()),
            match_pattern: None,
        };
        let ok = FqdnSelector {
            match_name: None,
            match_pattern: Some("**.cilium.io".into()),
        };
        assert_eq!(
            problems(|c| {
                fqdn_selector(&both, "d", c);
                fqdn_selector(&star, "e", c);
                fqdn_selector(&ok, "f", c);
            }),
            vec![
                "d: set either `matchName` or `matchPattern`, not both",
                "e.matchName: `*.cilium.io` contains `*`: names use letters, digits, `-`, `_` and `.` (use matchPattern for `*`)",
            ]
        );
        let http = HttpRule {
            path: Some("/api/(".into()),
            headers: Some(vec!["Content-Type: application/json".into(), ": x".into()]),
            ..Default::default()
        };
        assert_eq!(
            problems(|c| {
                http_rule(&http, "h", c);
            }),
            vec![
                "h.path: `/api/(` is not a valid regular expression: unclosed group",
                "h.headers[1]: `: x` is not a header: write `Name` or `Name: value`",
            ]
        );
    }

    #[test]
    fn http_rules_translate() {
        use crate::schema::HeaderMatch as SchemaHeaderMatch;
        let rule = HttpRule {
            method: Some("GET".into()),
            path: Some(String::new()),
            headers: Some(vec![
                "X-Present".into(),
                "Content-Type:  application/json ".into(),
                "X-Empty:".into(),
            ]),
            header_matches: Some(vec![
                SchemaHeaderMatch {
                    name: "X-Source".into(),
                    value: Some("frontend".into()),
                    ..Default::default()
                },
                SchemaHeaderMatch {
                    name: "X-Audit".into(),
                    mismatch: Some("LOG".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        let mut ctx = Ctx::new(PolicyKind::CiliumNetworkPolicy, "default");
        let got = http_rule(&rule, "h", &mut ctx).unwrap();
        assert!(ctx.problems.is_empty());
        let h = |name: &str, value: Option<&str>, log_only| HeaderMatch {
            name: name.into(),
            value: value.map(str::to_string),
            log_only,
        };
        assert_eq!(
            got,
            HttpMatch {
                method: Some("GET".into()),
                path: None,
                host: None,
                headers: vec![
                    h("X-Present", None, false),
                    h("Content-Type", Some("application/json"), false),
                    h("X-Empty", Some(""), false),
                    h("X-Source", Some("frontend"), false),
                    h("X-Audit", None, true),
                ],
            }
        );
    }

    #[test]
    fn http_rules_that_need_a_proxy_or_unicode_are_rejected() {
        use crate::schema::HeaderMatch as SchemaHeaderMatch;
        let rule = HttpRule {
            host: Some(r"\pL+\.com".into()),
            header_matches: Some(vec![
                SchemaHeaderMatch {
                    name: "X-A".into(),
                    mismatch: Some("ADD".into()),
                    value: Some("v".into()),
                    ..Default::default()
                },
                SchemaHeaderMatch {
                    name: "X-B".into(),
                    secret: Some(serde_yaml::from_str("{namespace: a, name: b}").unwrap()),
                    ..Default::default()
                },
                SchemaHeaderMatch {
                    name: "X-C".into(),
                    value: Some(" v".into()),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        };
        assert_eq!(
            problems(|c| assert!(http_rule(&rule, "h", c).is_none())),
            vec![
                "h.host: `\\pL+\\.com` needs Unicode, but HTTP rules are byte regexes with Unicode \
                 disabled: use ASCII classes such as `[A-Za-z]` instead of `\\pL`, `\\w` under `(?u)` or \
                 Unicode case folding",
                "h.headerMatches[0].mismatch: `mismatch: ADD` is not supported by weir's in-kernel \
                 HTTP matcher: header rewriting needs a proxy",
                "h.headerMatches[1].secret: `secret` is not supported by weir's in-kernel HTTP \
                 matcher: header rewriting needs a proxy",
                "h.headerMatches[2].value: ` v` starts or ends with whitespace, which is never part \
                 of a header value (values are compared without it): remove it",
            ]
        );
    }
}
