//! Label selectors: Kubernetes `matchLabels`/`matchExpressions` over security labels, whose
//! keys may carry a source (`k8s:app`, `reserved:host`, `any:org`; no source means `any`).

use std::collections::BTreeSet;
use std::fmt;

use crate::labels::{LabelSet, source};

/// A selector key: the label source it accepts (`any` = every source) and the key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SelectorKey {
    pub source: String,
    pub key: String,
}

impl SelectorKey {
    /// Parses `source:key`; a key without `:` has source `any`.
    pub fn parse(text: &str) -> Self {
        match text.split_once(':') {
            Some((s, k)) if !s.is_empty() => Self {
                source: s.to_string(),
                key: k.to_string(),
            },
            _ => Self {
                source: source::ANY.to_string(),
                key: text.to_string(),
            },
        }
    }

    pub fn new(source: &str, key: &str) -> Self {
        Self {
            source: source.to_string(),
            key: key.to_string(),
        }
    }

    fn accepts_source(&self, label_source: &str) -> bool {
        self.source == source::ANY || self.source == label_source
    }
}

impl fmt::Display for SelectorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.source, self.key)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One requirement of a selector; all of a selector's requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    pub key: SelectorKey,
    pub operator: Operator,
    pub values: BTreeSet<String>,
}

impl Requirement {
    pub fn equals(key: SelectorKey, value: &str) -> Self {
        Self {
            key,
            operator: Operator::In,
            values: BTreeSet::from([value.to_string()]),
        }
    }

    pub fn exists(key: SelectorKey) -> Self {
        Self {
            key,
            operator: Operator::Exists,
            values: BTreeSet::new(),
        }
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        let mut values = labels
            .iter()
            .filter(|l| l.key == self.key.key && self.key.accepts_source(&l.source))
            .map(|l| l.value.as_str());
        match self.operator {
            Operator::In => values.any(|v| self.values.contains(v)),
            Operator::NotIn => !values.any(|v| self.values.contains(v)),
            Operator::Exists => values.next().is_some(),
            Operator::DoesNotExist => values.next().is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values = || self.values.iter().cloned().collect::<Vec<_>>().join(",");
        match self.operator {
            Operator::In if self.values.len() == 1 => write!(f, "{}={}", self.key, values()),
            Operator::In => write!(f, "{} in ({})", self.key, values()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, values()),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// A label selector. No requirements = every label set.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    pub requirements: Vec<Requirement>,
}

impl Selector {
    /// The selector that matches every label set.
    pub fn all() -> Self {
        Self::default()
    }

    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    pub fn push(&mut self, requirement: Requirement) {
        if !self.requirements.contains(&requirement) {
            self.requirements.push(requirement);
        }
    }

    /// Whether a requirement names a key of this source (exactly, not through `any`).
    pub fn has_source(&self, src: &str) -> bool {
        self.requirements.iter().any(|r| r.key.source == src)
    }

    /// Whether a requirement names this key with source `src` or `any`.
    pub fn has_key(&self, src: &str, key: &str) -> bool {
        self.requirements
            .iter()
            .any(|r| r.key.key == key && (r.key.source == src || r.key.source == source::ANY))
    }

    /// Whether a requirement names a key starting with `prefix`, with source `src` or `any`.
    pub fn has_key_prefix(&self, src: &str, prefix: &str) -> bool {
        self.requirements.iter().any(|r| {
            r.key.key.starts_with(prefix) && (r.key.source == src || r.key.source == source::ANY)
        })
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.requirements.is_empty() {
            return f.write_str("{}");
        }
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        write!(f, "{{{}}}", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Label;

    fn set(labels: &[&str]) -> LabelSet {
        labels.iter().map(|l| l.parse::<Label>().unwrap()).collect()
    }

    #[test]
    fn key_sources() {
        assert_eq!(SelectorKey::parse("app"), SelectorKey::new("any", "app"));
        assert_eq!(
            SelectorKey::parse("k8s:app"),
            SelectorKey::new("k8s", "app")
        );
        assert_eq!(
            SelectorKey::parse("reserved:host"),
            SelectorKey::new("reserved", "host")
        );
    }

    #[test]
    fn operators() {
        let labels = set(&["k8s:app=web", "k8s:tier=front", "reserved:host"]);
        let req = |key: &str, op, values: &[&str]| Requirement {
            key: SelectorKey::parse(key),
            operator: op,
            values: values.iter().map(|s| s.to_string()).collect(),
        };
        assert!(req("app", Operator::In, &["web", "db"]).matches(&labels));
        assert!(req("k8s:app", Operator::In, &["web"]).matches(&labels));
        assert!(!req("reserved:app", Operator::In, &["web"]).matches(&labels));
        assert!(req("app", Operator::NotIn, &["db"]).matches(&labels));
        assert!(!req("app", Operator::NotIn, &["web"]).matches(&labels));
        assert!(req("missing", Operator::NotIn, &["x"]).matches(&labels));
        assert!(req("reserved:host", Operator::In, &[""]).matches(&labels));
        assert!(req("tier", Operator::Exists, &[]).matches(&labels));
        assert!(req("env", Operator::DoesNotExist, &[]).matches(&labels));
        assert!(Selector::all().matches(&labels));
    }
}
