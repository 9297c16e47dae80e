//! Label selectors as Hubble evaluates them: Kubernetes label-selector syntax
//! whose keys may carry a Cilium source prefix (`k8s:app=web`,
//! `reserved:host`), matched against `source:key=value` label strings.
//!
//! Parsing happens in three steps, like Hubble's:
//! 1. every key gets a source: `k8s:app` becomes `k8s.app`, a bare `app`
//!    becomes `any.app` (the Kubernetes grammar has no `:` in keys);
//! 2. the result is parsed with the Kubernetes grammar (`=`, `==`, `!=`,
//!    `in`, `notin`, `!key`, `key`, `>`, `<`) and validated like Kubernetes
//!    validates keys and values;
//! 3. each key is split back into (source, key) at its first dot.
//!
//! A requirement's key matches a label when the keys are equal and the
//! requirement's source is `any` or equal to the label's source.

/// A parsed selector: all requirements must hold.
#[derive(Debug, Clone)]
pub(crate) struct Selector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone)]
struct Requirement {
    /// Label source the key must come from; `None` means any source.
    source: Option<String>,
    key: String,
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Exists,
    DoesNotExist,
    /// `=`, `==` and `in`.
    In(Vec<String>),
    /// `!=` and `notin`.
    NotIn(Vec<String>),
    GreaterThan(i64),
    LessThan(i64),
}

impl Selector {
    /// Parses `selector`; the error text says what is wrong.
    pub(crate) fn parse(selector: &str) -> Result<Self, String> {
        let translated = add_sources(selector);
        let requirements = Parser::new(&translated).parse()?;
        Ok(Self { requirements })
    }

    /// Whether every requirement holds for `labels` (`source:key=value`
    /// strings, as in `flow.Endpoint.labels`).
    pub(crate) fn matches(&self, labels: &[String]) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    fn matches(&self, labels: &[String]) -> bool {
        let value = self.lookup(labels);
        match &self.op {
            Op::Exists => value.is_some(),
            Op::DoesNotExist => value.is_none(),
            Op::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
            Op::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
            Op::GreaterThan(n) => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            Op::LessThan(n) => value
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }

    /// Value of the first label whose key matches, if any.
    fn lookup<'a>(&self, labels: &'a [String]) -> Option<&'a str> {
        labels.iter().find_map(|label| {
            let parsed = ParsedLabel::parse(label);
            let source_ok = self.source.as_deref().is_none_or(|s| s == parsed.source);
            (source_ok && parsed.key == self.key).then_some(parsed.value)
        })
    }
}

/// A flow label split like Cilium splits `source:key=value`.
struct ParsedLabel<'a> {
    source: &'a str,
    key: &'a str,
    value: &'a str,
}

impl<'a> ParsedLabel<'a> {
    fn parse(label: &'a str) -> Self {
        let (source, rest) = if let Some(rest) = label.strip_prefix('$') {
            ("reserved", rest)
        } else if let Some((source, rest)) = label.split_once(':') {
            (source, rest)
        } else if let Some(rest) = label.strip_prefix("reserved.") {
            ("reserved", rest)
        } else {
            ("unspec", label)
        };
        let (key, value) = match rest.split_once('=') {
            Some(("", key)) if source == "reserved" => (key, ""),
            Some((key, value)) => (key, value),
            None => (rest, ""),
        };
        Self { source, key, value }
    }
}

/// Step 1: gives every key of the selector an explicit source, written with
/// a dot (`k8s:app in (a)` → `k8s.app in (a)`, `!app` → `!any.app`).
fn add_sources(selector: &str) -> String {
    let mut out = String::with_capacity(selector.len() + 8);
    let mut chars = selector.chars().peekable();
    while chars.peek().is_some() {
        // Up to the start of the key.
        while let Some(&c) = chars.peek() {
            if !c.is_whitespace() && c != '!' {
                break;
            }
            out.push(c);
            chars.next();
        }
        // The key.
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || matches!(c, '=' | '!' | ',') {
                break;
            }
            key.push(c);
            chars.next();
        }
        match key.split_once(':') {
            Some((source, rest)) => {
                out.push_str(source);
                out.push('.');
                out.push_str(rest);
            }
            None => {
                out.push_str("any.");
                out.push_str(&key);
            }
        }
        // Up to and including the comma that ends this requirement.
        let mut depth = 0i32;
        for c in chars.by_ref() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            out.push(c);
            if c == ',' && depth == 0 {
                break;
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Identifier(String),
    In,
    NotIn,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    OpenParen,
    CloseParen,
    Comma,
    End,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Identifier(s) => format!("'{s}'"),
            Token::In => "'in'".into(),
            Token::NotIn => "'notin'".into(),
            Token::Not => "'!'".into(),
            Token::Equals => "'='".into(),
            Token::DoubleEquals => "'=='".into(),
            Token::NotEquals => "'!='".into(),
            Token::GreaterThan => "'>'".into(),
            Token::LessThan => "'<'".into(),
            Token::OpenParen => "'('".into(),
            Token::CloseParen => "')'".into(),
            Token::Comma => "','".into(),
            Token::End => "end of string".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Splits a (translated) selector into Kubernetes selector tokens.
fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut rest = input;
    loop {
        rest = rest.trim_start_matches(is_space);
        let Some(c) = rest.chars().next() else {
            tokens.push(Token::End);
            return tokens;
        };
        if is_special(c) {
            let (token, len) = if rest.starts_with("==") {
                (Token::DoubleEquals, 2)
            } else if rest.starts_with("!=") {
                (Token::NotEquals, 2)
            } else {
                let token = match c {
                    '=' => Token::Equals,
                    '!' => Token::Not,
                    '(' => Token::OpenParen,
                    ')' => Token::CloseParen,
                    ',' => Token::Comma,
                    '>' => Token::GreaterThan,
                    _ => Token::LessThan,
                };
                (token, 1)
            };
            tokens.push(token);
            rest = &rest[len..];
        } else {
            let end = rest
                .find(|c: char| is_space(c) || is_special(c))
                .unwrap_or(rest.len());
            let word = &rest[..end];
            tokens.push(match word {
                "in" => Token::In,
                "notin" => Token::NotIn,
                _ => Token::Identifier(word.to_owned()),
            });
            rest = &rest[end..];
        }
    }
}

/// Step 2 and 3: the Kubernetes label-selector grammar.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn new(input: &str) -> Self {
        Self {
            tokens: tokenize(input),
            pos: 0,
        }
    }

    fn peek(&self) -> &Token {
        self.tokens.get(self.pos).unwrap_or(&Token::End)
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        token
    }

    /// Where a value is expected, `in` and `notin` are plain words.
    fn peek_value(&self) -> Token {
        as_value(self.peek().clone())
    }

    fn next_value(&mut self) -> Token {
        as_value(self.next())
    }

    fn parse(mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            match self.peek_value() {
                Token::End => return Ok(requirements),
                Token::Identifier(_) | Token::Not => {}
                other => {
                    return Err(format!(
                        "found {}, expected: !, identifier, or end of string",
                        other.describe()
                    ));
                }
            }
            requirements.push(self.requirement()?);
            match self.next_value() {
                Token::End => return Ok(requirements),
                Token::Comma => match self.peek_value() {
                    Token::Identifier(_) | Token::Not => {}
                    other => {
                        return Err(format!(
                            "found {}, expected: identifier after ','",
                            other.describe()
                        ));
                    }
                },
                other => {
                    return Err(format!(
                        "found {}, expected: ',' or end of string",
                        other.describe()
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let mut token = self.next_value();
        let negated = token == Token::Not;
        if negated {
            token = self.next_value();
        }
        let key = match token {
            Token::Identifier(key) => key,
            other => return Err(format!("found {}, expected: identifier", other.describe())),
        };
        validate_key(&key)?;
        let at_end = matches!(self.peek_value(), Token::End | Token::Comma);
        if negated {
            return Ok(make_requirement(&key, Op::DoesNotExist));
        }
        if at_end {
            return Ok(make_requirement(&key, Op::Exists));
        }
        let op = self.next();
        let op = match op {
            Token::In | Token::NotIn => {
                let values = self.value_set()?;
                validate_values(&key, &values)?;
                if op == Token::In {
                    Op::In(values)
                } else {
                    Op::NotIn(values)
                }
            }
            Token::Equals | Token::DoubleEquals | Token::NotEquals => {
                let value = self.single_value()?;
                validate_values(&key, std::slice::from_ref(&value))?;
                if op == Token::NotEquals {
                    Op::NotIn(vec![value])
                } else {
                    Op::In(vec![value])
                }
            }
            Token::GreaterThan | Token::LessThan => {
                let value = self.single_value()?;
                validate_values(&key, std::slice::from_ref(&value))?;
                let n: i64 = value.parse().map_err(|_| {
                    format!(
                        "key {:?}: '>' and '<' need an integer value, got {value:?}",
                        display_key(&key)
                    )
                })?;
                if op == Token::GreaterThan {
                    Op::GreaterThan(n)
                } else {
                    Op::LessThan(n)
                }
            }
            other => {
                return Err(format!(
                    "found {}, expected an operator: =, ==, !=, in, notin, >, <",
                    other.describe()
                ));
            }
        };
        Ok(make_requirement(&key, op))
    }

    /// `(a, b)`. As in Kubernetes, `()` is the set {""} and a comma with
    /// nothing on one side adds "".
    fn value_set(&mut self) -> Result<Vec<String>, String> {
        match self.next_value() {
            Token::OpenParen => {}
            other => return Err(format!("found {}, expected: '('", other.describe())),
        }
        match self.peek_value() {
            Token::CloseParen => {
                self.next();
                Ok(vec![String::new()])
            }
            Token::Identifier(_) | Token::Comma => {
                let values = self.value_list()?;
                match self.next_value() {
                    Token::CloseParen => Ok(values),
                    other => Err(format!("found {}, expected: ')'", other.describe())),
                }
            }
            other => Err(format!(
                "found {}, expected: ',', ')' or identifier",
                other.describe()
            )),
        }
    }

    /// The inside of a value set, up to (not including) the closing `)`.
    fn value_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            match self.next_value() {
                Token::Identifier(value) => {
                    push_unique(&mut values, value);
                    match self.peek_value() {
                        Token::Comma => {}
                        Token::CloseParen => return Ok(values),
                        other => {
                            return Err(format!(
                                "found {}, expected: ',' or ')'",
                                other.describe()
                            ));
                        }
                    }
                }
                Token::Comma => {
                    if values.is_empty() {
                        push_unique(&mut values, String::new());
                    }
                    match self.peek_value() {
                        Token::CloseParen => {
                            push_unique(&mut values, String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.next();
                            push_unique(&mut values, String::new());
                        }
                        _ => {}
                    }
                }
                other => {
                    return Err(format!(
                        "found {}, expected: ',' or identifier",
                        other.describe()
                    ));
                }
            }
        }
    }

    /// The value after `=`, `==`, `!=`, `>` or `<`; nothing means "".
    fn single_value(&mut self) -> Result<String, String> {
        if matches!(self.peek_value(), Token::End | Token::Comma) {
            return Ok(String::new());
        }
        match self.next_value() {
            Token::Identifier(value) => Ok(value),
            other => Err(format!("found {}, expected: identifier", other.describe())),
        }
    }
}

fn as_value(token: Token) -> Token {
    match token {
        Token::In => Token::Identifier("in".into()),
        Token::NotIn => Token::Identifier("notin".into()),
        other => other,
    }
}

fn push_unique(values: &mut Vec<String>, value: String) {
    if !values.contains(&value) {
        values.push(value);
    }
}

/// Splits a translated key (`k8s.app`) back into source and key.
fn make_requirement(translated_key: &str, op: Op) -> Requirement {
    let (source, key) = translated_key
        .split_once('.')
        .unwrap_or(("", translated_key));
    let source = match source {
        "" | "any" | "unspec" => None,
        other => Some(other.to_owned()),
    };
    Requirement {
        source,
        key: key.to_owned(),
        op,
    }
}

/// Kubernetes' rule for label keys: `[prefix/]name`, prefix a DNS subdomain,
/// name at most 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let display = display_key(key);
    if name.contains('/') {
        return Err(format!(
            "invalid label key {display:?}: at most one '/' is allowed"
        ));
    }
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err(format!(
                "invalid label key {display:?}: empty prefix before '/'"
            ));
        }
        if !is_dns_subdomain(prefix) {
            return Err(format!(
                "invalid label key {display:?}: the prefix must be a lowercase DNS subdomain"
            ));
        }
    }
    if name.is_empty() {
        return Err(format!("invalid label key {display:?}: empty name"));
    }
    if name.len() > 63 {
        return Err(format!(
            "invalid label key {display:?}: name longer than 63 characters"
        ));
    }
    if !is_label_token(name) {
        return Err(format!(
            "invalid label key {display:?}: use alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric"
        ));
    }
    Ok(())
}

/// The key as the user wrote it (`any.app` was `app`, `k8s.app` was `k8s:app`).
fn display_key(translated: &str) -> String {
    match translated.split_once('.') {
        Some(("any", rest)) => rest.to_owned(),
        Some((source, rest)) => format!("{source}:{rest}"),
        None => translated.to_owned(),
    }
}

fn validate_values(key: &str, values: &[String]) -> Result<(), String> {
    for value in values {
        if value.len() > 63 {
            return Err(format!(
                "key {:?}: invalid value {value:?}: longer than 63 characters",
                display_key(key)
            ));
        }
        if !value.is_empty() && !is_label_token(value) {
            return Err(format!(
                "key {:?}: invalid value {value:?}: use alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric",
                display_key(key)
            ));
        }
    }
    Ok(())
}

fn is_label_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let bytes = label.as_bytes();
            match (bytes.first(), bytes.last()) {
                (Some(first), Some(last)) => {
                    (first.is_ascii_lowercase() || first.is_ascii_digit())
                        && (last.is_ascii_lowercase() || last.is_ascii_digit())
                        && bytes
                            .iter()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
                }
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn sel(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn sources_are_added_to_every_key() {
        assert_eq!(add_sources("app=x"), "any.app=x");
        assert_eq!(
            add_sources("k8s:app in (a, b),!canary"),
            "k8s.app in (a, b),!any.canary"
        );
        assert_eq!(add_sources("a in (x,y), b"), "any.a in (x,y), any.b");
        assert_eq!(add_sources(""), "");
    }

    #[test]
    fn equality_set_and_existence() {
        let l = labels(&["k8s:app=web", "k8s:tier=front", "reserved:host"]);
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(sel("missing!=db").matches(&l));
        assert!(sel("app in (db, web)").matches(&l));
        assert!(!sel("app notin (db, web)").matches(&l));
        assert!(sel("missing notin (db)").matches(&l));
        assert!(sel("app").matches(&l));
        assert!(!sel("!app").matches(&l));
        assert!(sel("!canary").matches(&l));
        assert!(sel("app=web,tier=front").matches(&l));
        assert!(!sel("app=web,tier=back").matches(&l));
        assert!(sel("reserved:host").matches(&l));
        assert!(sel("").matches(&l));
    }

    #[test]
    fn source_prefixes() {
        let l = labels(&["k8s:app=web", "container:team=a"]);
        assert!(sel("k8s:app=web").matches(&l));
        assert!(sel("any:app=web").matches(&l));
        assert!(!sel("container:app=web").matches(&l));
        assert!(sel("container:team=a").matches(&l));
        assert!(!sel("k8s:team").matches(&l));
        // A label without source only matches source-less selectors.
        let bare = labels(&["app=web"]);
        assert!(sel("app=web").matches(&bare));
        assert!(!sel("k8s:app=web").matches(&bare));
    }

    #[test]
    fn dotted_and_prefixed_keys() {
        let l = labels(&[
            "k8s:io.kubernetes.pod.namespace=default",
            "k8s:app.kubernetes.io/name=web",
        ]);
        assert!(sel("io.kubernetes.pod.namespace=default").matches(&l));
        assert!(sel("k8s:io.kubernetes.pod.namespace in (default, kube-system)").matches(&l));
        assert!(sel("k8s:app.kubernetes.io/name=web").matches(&l));
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(&["k8s:replicas=3", "k8s:name=x"]);
        assert!(sel("replicas>2").matches(&l));
        assert!(!sel("replicas>3").matches(&l));
        assert!(sel("replicas<4").matches(&l));
        assert!(!sel("name<4").matches(&l));
        assert!(!sel("missing<4").matches(&l));
    }

    #[test]
    fn first_label_with_the_key_decides() {
        let l = labels(&["k8s:app=a", "container:app=b"]);
        assert!(sel("app=a").matches(&l));
        assert!(!sel("app=b").matches(&l));
        assert!(sel("container:app=b").matches(&l));
    }

    #[test]
    fn value_sets_with_empty_elements() {
        let l = labels(&["k8s:app="]);
        assert!(sel("app in (,x)").matches(&l));
        assert!(sel("app in (x,)").matches(&l));
        assert!(sel("app=").matches(&l));
        assert!(sel("app in ()").matches(&l));
        assert!(!sel("app in (x)").matches(&l));
        let words = labels(&["k8s:mode=in"]);
        assert!(sel("mode in (in, notin)").matches(&words));
        assert!(sel("mode=in").matches(&words));
    }

    #[test]
    fn invalid_selectors() {
        for bad in [
            "app in a",
            "app in (a b)",
            "app in (a",
            "=web",
            "app==(",
            "app=web,",
            "app=we b",
            "!app=web",
            "app>x",
            "App/x=y",
            "app=-bad",
            "   ",
            "a/b/c=d",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
