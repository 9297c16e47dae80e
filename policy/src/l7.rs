//! Validation of L7 rules (HTTP, Kafka, DNS, generic `l7proto`) and DNS name selectors.
//! They are parsed and checked now and enforced by later work; until then the compiler allows
//! their ports at L4 and reports a notice.

use crate::model::{PortMatch, PortSpec, Protocol};
use crate::schema::{FqdnSelector, HttpRule, KafkaRule, L7Rules};
use crate::translate::Ctx;

/// Which kind of L7 rules a `rules` block holds.
pub(crate) struct L7Kind {
    /// For messages: `HTTP`, `Kafka`, `DNS`, ``l7proto `x` ``.
    pub name: String,
    /// The field under `rules`: `http`, `kafka`, `dns`, `l7proto`.
    pub field: &'static str,
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
    }
    match kind {
        "http" => {
            for (i, r) in rules.http.iter().flatten().enumerate() {
                http_rule(r, &format!("{path}.http[{i}]"), ctx);
            }
            Some(L7Kind {
                name: "HTTP".into(),
                field: "http",
            })
        }
        "kafka" => {
            for (i, r) in rules.kafka.iter().flatten().enumerate() {
                kafka_rule(r, &format!("{path}.kafka[{i}]"), ctx);
            }
            Some(L7Kind {
                name: "Kafka".into(),
                field: "kafka",
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
            })
        }
    }
}

fn regex_error(e: &regex::Error) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("invalid")
        .trim_start_matches("error: ")
        .to_string()
}

fn check_regex(value: Option<&String>, field: &str, path: &str, ctx: &mut Ctx) {
    if let Some(v) = value
        && let Err(e) = regex::Regex::new(v)
    {
        ctx.error(
            format!("{path}.{field}"),
            format!(
                "`{v}` is not a valid regular expression: {}",
                regex_error(&e)
            ),
        );
    }
}

fn http_rule(r: &HttpRule, path: &str, ctx: &mut Ctx) {
    check_regex(r.method.as_ref(), "method", path, ctx);
    check_regex(r.path.as_ref(), "path", path, ctx);
    check_regex(r.host.as_ref(), "host", path, ctx);
    for (i, h) in r.headers.iter().flatten().enumerate() {
        let name = h.split(':').next().unwrap_or("").trim();
        if name.is_empty() || !name.chars().all(is_token_char) {
            ctx.error(
                format!("{path}.headers[{i}]"),
                format!("`{h}` is not a header: write `Name` or `Name: value`"),
            );
        }
    }
    for (i, m) in r.header_matches.iter().flatten().enumerate() {
        let p = format!("{path}.headerMatches[{i}]");
        if m.name.is_empty() || !m.name.chars().all(is_token_char) {
            ctx.error(
                format!("{p}.name"),
                format!("`{}` is not a header name", m.name),
            );
        }
        if let Some(action) = &m.mismatch
            && !matches!(action.as_str(), "" | "LOG" | "ADD" | "DELETE" | "REPLACE")
        {
            ctx.error(
                format!("{p}.mismatch"),
                format!("unknown mismatch action `{action}`: use LOG, ADD, DELETE or REPLACE"),
            );
        }
    }
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
            problems(|c| http_rule(&http, "h", c)),
            vec![
                "h.path: `/api/(` is not a valid regular expression: unclosed group",
                "h.headers[1]: `: x` is not a header: write `Name` or `Name: value`",
            ]
        );
    }
}
