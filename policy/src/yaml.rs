//! YAML plumbing for diagnostics: splitting a file into documents (keeping absolute line
//! numbers), turning serde errors into field/line/column/message with hints, and finding the
//! line of a field path for errors found after deserialisation.

/// One YAML document of a file.
pub(crate) struct Document {
    /// 1-based.
    pub number: usize,
    /// The file's text with every line outside this document blanked, so positions reported by
    /// the YAML parser are positions in the file.
    pub text: String,
    /// Whether the document has any content (not only blank lines and comments).
    pub has_content: bool,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
}

fn is_content(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
}

/// Splits a multi-document YAML text at `---` / `...` markers.
pub(crate) fn split_documents(text: &str) -> Vec<Document> {
    let lines: Vec<&str> = text.split('\n').collect();
    // (start line, lines of the document)
    let mut docs: Vec<(usize, Vec<String>)> = Vec::new();
    let mut current: Option<(usize, Vec<String>)> = Some((0, Vec::new()));
    let mut implicit_first = true;
    for (i, line) in lines.iter().enumerate() {
        if is_marker(line, "---") {
            if let Some(doc) = current.take() {
                let keep = !implicit_first || doc.1.iter().any(|l| is_content(l));
                if keep {
                    docs.push(doc);
                }
            }
            implicit_first = false;
            current = Some((i, vec![format!("   {}", &line[3..])]));
        } else if is_marker(line, "...") {
            if let Some(doc) = current.take() {
                let keep = !implicit_first || doc.1.iter().any(|l| is_content(l));
                if keep {
                    docs.push(doc);
                }
            }
            implicit_first = false;
        } else if let Some((_, doc_lines)) = current.as_mut() {
            doc_lines.push(line.to_string());
        }
    }
    if let Some(doc) = current.take() {
        let keep = !implicit_first || doc.1.iter().any(|l| is_content(l));
        if keep {
            docs.push(doc);
        }
    }
    docs.into_iter()
        .enumerate()
        .map(|(n, (start, doc_lines))| {
            let has_content = doc_lines.iter().any(|l| is_content(l));
            let mut text = "\n".repeat(start);
            text.push_str(&doc_lines.join("\n"));
            Document {
                number: n + 1,
                text,
                has_content,
            }
        })
        .collect()
}

/// A serde error, taken apart.
pub(crate) struct SerdeProblem {
    pub field: String,
    pub message: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
}

pub(crate) fn serde_problem(err: &serde_yaml::Error) -> SerdeProblem {
    let mut text = err.to_string();
    let (line, column) = match err.location() {
        Some(loc) => {
            let suffix = format!(" at line {} column {}", loc.line(), loc.column());
            text = text.replacen(&suffix, "", 1);
            (Some(loc.line()), Some(loc.column()))
        }
        None => (None, None),
    };
    let (field, message) = match text.split_once(": ") {
        Some((path, rest)) if is_path(path) => (path.to_string(), rest.to_string()),
        _ => (String::new(), text.clone()),
    };
    SerdeProblem {
        field,
        message: improve_message(&message),
        line,
        column,
    }
}

fn is_path(s: &str) -> bool {
    !s.is_empty()
        && !s.contains(' ')
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-' | ':' | '/')
        })
}

/// Rewrites serde messages into actionable ones.
fn improve_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, tail)) = rest.split_once('`')
    {
        let candidates = backticked(tail);
        let expected = if candidates.is_empty() {
            String::new()
        } else {
            format!(
                " (expected one of {})",
                candidates
                    .iter()
                    .map(|c| format!("`{c}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        if field == "grpc" && candidates.iter().any(|c| c == "http") {
            return format!(
                "unknown field `grpc`: gRPC runs over HTTP/2, so write `http` rules with `method: POST` \
                 and `path: /package.Service/Method`{expected}"
            );
        }
        if field == "rules" && candidates == ["ports"] {
            return format!(
                "unknown field `rules`: deny rules cannot carry L7 rules (Cilium forbids them): \
                 deny the port at L4, or allow only the wanted requests with `rules.http` in an \
                 allow rule{expected}"
            );
        }
        return match suggest(field, &candidates) {
            Some(s) => format!("unknown field `{field}`: did you mean `{s}`?{expected}"),
            None if candidates.is_empty() => {
                format!("unknown field `{field}`: this mapping has no fields")
            }
            None => format!("unknown field `{field}`{expected}"),
        };
    }
    message.to_string()
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

/// Words people write for a field that has another name.
const SYNONYMS: &[(&str, &str)] = &[
    ("number", "port"),
    ("portNumber", "port"),
    ("containerPort", "port"),
    ("targetPort", "port"),
    ("podSelector", "endpointSelector"),
    ("selector", "endpointSelector"),
    ("endpoints", "endpointSelector"),
    ("from", "fromEndpoints"),
    ("to", "toEndpoints"),
    ("ports", "toPorts"),
    ("port", "toPorts"),
    ("fromPorts", "toPorts"),
    ("cidr", "toCIDR"),
    ("cidr", "fromCIDR"),
    ("fqdn", "toFQDNs"),
    ("ingressDenied", "ingressDeny"),
    ("egressDenied", "egressDeny"),
    ("deny", "ingressDeny"),
    ("labels", "matchLabels"),
    ("expressions", "matchExpressions"),
    ("op", "operator"),
    ("value", "values"),
    ("exceptions", "except"),
    ("type", "policyTypes"),
];

/// The field the user most likely meant.
pub(crate) fn suggest(word: &str, candidates: &[String]) -> Option<String> {
    for (from, to) in SYNONYMS {
        if *from == word && candidates.iter().any(|c| c == to) {
            return Some(to.to_string());
        }
    }
    if let Some(c) = candidates.iter().find(|c| c.eq_ignore_ascii_case(word)) {
        return Some(c.clone());
    }
    let lower = word.to_ascii_lowercase();
    let best = candidates
        .iter()
        .map(|c| (levenshtein(&lower, &c.to_ascii_lowercase()), c))
        .min_by_key(|(d, _)| *d)?;
    let limit = (word.len().max(best.1.len()) / 3).max(1);
    if best.0 <= limit.min(3) {
        return Some(best.1.clone());
    }
    candidates
        .iter()
        .find(|c| {
            let cl = c.to_ascii_lowercase();
            lower.len() >= 3 && (cl.contains(&lower) || lower.contains(&cl))
        })
        .cloned()
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Locating a field path in block-style YAML.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Segment::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(end) = stripped.find(']') else { break };
                if let Ok(n) = stripped[..end].parse() {
                    out.push(Segment::Index(n));
                }
                rest = &stripped[end + 1..];
            }
        } else if !rest.is_empty() {
            out.push(Segment::Key(rest.to_string()));
        }
    }
    out
}

#[derive(Debug)]
enum Token {
    Dash,
    Key(String, bool),
    Other,
}

#[derive(Debug)]
struct Entry {
    line: usize,
    col: usize,
    token: Token,
}

fn key_of(content: &str) -> Option<(String, bool)> {
    let (key, rest) = if let Some(q) = content.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = content[1..].find(q)? + 1;
        (content[1..end].to_string(), &content[end + 1..])
    } else {
        let pos = content
            .find(": ")
            .or_else(|| content.strip_suffix(':').map(|s| s.len()))?;
        (content[..pos].trim_end().to_string(), &content[pos..])
    };
    let rest = rest.strip_prefix(':')?;
    let value = rest.split(" #").next().unwrap_or("").trim();
    Some((key, !value.is_empty()))
}

fn tokenize(text: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches('\r');
        let mut col = line.len() - line.trim_start_matches(' ').len();
        let mut content = &line[col..];
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        while let Some(rest) =
            content
                .strip_prefix("- ")
                .or(if content == "-" { Some("") } else { None })
        {
            out.push(Entry {
                line: i + 1,
                col: col + 1,
                token: Token::Dash,
            });
            let skipped = content.len() - rest.len();
            let rest_trim = rest.trim_start_matches(' ');
            col += skipped + (rest.len() - rest_trim.len());
            content = rest_trim;
            if content.is_empty() {
                break;
            }
        }
        if content.is_empty() {
            continue;
        }
        let token = match key_of(content) {
            Some((k, inline)) => Token::Key(k, inline),
            None => Token::Other,
        };
        out.push(Entry {
            line: i + 1,
            col: col + 1,
            token,
        });
    }
    out
}

/// The 1-based (line, column) of the deepest part of `path` found in `text`.
pub(crate) fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let entries = tokenize(text);
    let segments = parse_path(path);
    let mut range = 0..entries.len();
    let mut found: Option<(usize, usize)> = None;
    for seg in segments {
        let node_col = entries.get(range.start).filter(|_| !range.is_empty())?.col;
        match seg {
            Segment::Key(name) => {
                let idx = range.clone().find(|&i| {
                    entries[i].col == node_col
                        && matches!(&entries[i].token, Token::Key(k, _) if *k == name)
                })?;
                found = Some((entries[idx].line, entries[idx].col));
                if matches!(entries[idx].token, Token::Key(_, true)) {
                    return found;
                }
                let key_col = entries[idx].col;
                let start = idx + 1;
                let mut end = start;
                while end < range.end
                    && (entries[end].col > key_col
                        || (entries[end].col == key_col
                            && matches!(entries[end].token, Token::Dash)))
                {
                    end += 1;
                }
                range = start..end;
            }
            Segment::Index(n) => {
                let dashes: Vec<usize> = range
                    .clone()
                    .filter(|&i| {
                        entries[i].col == node_col && matches!(entries[i].token, Token::Dash)
                    })
                    .collect();
                let idx = *dashes.get(n)?;
                found = Some((entries[idx].line, entries[idx].col));
                let dash_col = entries[idx].col;
                let start = idx + 1;
                let mut end = start;
                while end < range.end && entries[end].col > dash_col {
                    end += 1;
                }
                range = start..end;
            }
        }
        if range.is_empty() {
            break;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_keeping_lines() {
        let docs = split_documents("# lead\na: 1\n---\nb: 2\n--- # c\n---\nc: 3\n...\n");
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0].text, "# lead\na: 1");
        assert_eq!(docs[1].text, "\n\n   \nb: 2");
        assert!(!docs[2].has_content);
        assert_eq!(docs[3].number, 4);
        let only = split_documents("---\na: 1\n");
        assert_eq!(only.len(), 1);
        assert!(only[0].has_content);
    }

    #[test]
    fn locates_paths() {
        let text = "spec:\n  ingress:\n    - fromEndpoints:\n        - matchLabels:\n            app: a\n      toPorts:\n        - ports:\n            - port: \"80\"\n            - port: x\n";
        assert_eq!(
            locate(text, "spec.ingress[0].toPorts[0].ports[1].port"),
            Some((9, 15))
        );
        assert_eq!(
            locate(text, "spec.ingress[0].toPorts[0].ports[1]"),
            Some((9, 13))
        );
        assert_eq!(
            locate(text, "spec.ingress[0].fromEndpoints[0].matchLabels"),
            Some((4, 11))
        );
        assert_eq!(locate(text, "spec.ingress[0]"), Some((3, 5)));
        let flat = "spec:\n  egress:\n  - toCIDR: [1.2.3.4/32]\n";
        assert_eq!(locate(flat, "spec.egress[0].toCIDR[0]"), Some((3, 5)));
    }

    #[test]
    fn suggestions() {
        let c = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            suggest("number", &c(&["port", "endPort", "protocol"])).as_deref(),
            Some("port")
        );
        assert_eq!(
            suggest("fromEndpoint", &c(&["fromEndpoints", "toPorts"])).as_deref(),
            Some("fromEndpoints")
        );
        assert_eq!(
            suggest("fromCidr", &c(&["fromCIDR", "fromCIDRSet"])).as_deref(),
            Some("fromCIDR")
        );
        assert_eq!(suggest("zzz", &c(&["port"])), None);
    }
}
