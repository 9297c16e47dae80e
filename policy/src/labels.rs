//! Security labels (`source:key=value`) and the labels weir derives for endpoints.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::cluster::{ClusterState, EndpointSpec};

/// Label sources weir uses.
pub mod source {
    pub const K8S: &str = "k8s";
    pub const RESERVED: &str = "reserved";
    pub const CIDR: &str = "cidr";
    /// In selectors only: matches a label of any source.
    pub const ANY: &str = "any";
}

/// `io.kubernetes.pod.namespace`: the namespace of a pod.
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// `io.cilium.k8s.policy.cluster`: the cluster a pod belongs to.
pub const POLICY_CLUSTER: &str = "io.cilium.k8s.policy.cluster";
/// `io.cilium.k8s.policy.serviceaccount`: a pod's service account.
pub const POLICY_SERVICE_ACCOUNT: &str = "io.cilium.k8s.policy.serviceaccount";
/// Prefix of the labels that carry the labels of a pod's namespace.
pub const NAMESPACE_LABELS_PREFIX: &str = "io.cilium.k8s.namespace.labels.";
/// The label Kubernetes puts on every namespace (its name).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// One label: `source:key=value` (`source:key` when the value is empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub source: String,
    pub key: String,
    pub value: String,
}

impl Label {
    pub fn new(source: &str, key: &str, value: &str) -> Self {
        Self {
            source: source.to_string(),
            key: key.to_string(),
            value: value.to_string(),
        }
    }

    pub fn k8s(key: &str, value: &str) -> Self {
        Self::new(source::K8S, key, value)
    }

    pub fn reserved(key: &str) -> Self {
        Self::new(source::RESERVED, key, "")
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}:{}", self.source, self.key)
        } else {
            write!(f, "{}:{}={}", self.source, self.key, self.value)
        }
    }
}

/// A label that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("label `{text}`: {reason}")]
pub struct LabelParseError {
    pub text: String,
    pub reason: String,
}

impl FromStr for Label {
    type Err = LabelParseError;

    /// `source:key=value`, `source:key` or `key=value`. Without a source, `k8s` is assumed
    /// (labels given on the command line are usually pod labels).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| LabelParseError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let (key_part, value) = match text.split_once('=') {
            Some((k, v)) => (k, v),
            None => (text, ""),
        };
        let (source, key) = match key_part.split_once(':') {
            Some((s, k)) => (s, k),
            None => (source::K8S, key_part),
        };
        if source.is_empty() {
            return Err(err("the source before `:` is empty"));
        }
        if key.is_empty() {
            return Err(err("the key is empty"));
        }
        Ok(Label::new(source, key, value))
    }
}

/// A set of labels, ordered; its canonical text is the labels joined by `;`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LabelSet(BTreeSet<Label>);

impl LabelSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, label: Label) {
        // A key appears once per source: a later value replaces an earlier one.
        self.0
            .retain(|l| !(l.source == label.source && l.key == label.key));
        self.0.insert(label);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a label with this source and key exists (any value).
    pub fn has(&self, source: &str, key: &str) -> bool {
        self.0.iter().any(|l| l.source == source && l.key == key)
    }

    /// The value of the label with this source and key.
    pub fn get(&self, source: &str, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|l| l.source == source && l.key == key)
            .map(|l| l.value.as_str())
    }

    /// `true` for the labels of a reserved identity (`reserved:*`).
    pub fn is_reserved(&self) -> bool {
        self.0.iter().any(|l| l.source == source::RESERVED)
    }

    /// The prefix of a CIDR identity (its `cidr:` label).
    pub fn cidr(&self) -> Option<ipnet::IpNet> {
        self.0
            .iter()
            .find(|l| l.source == source::CIDR)
            .and_then(|l| l.key.parse().ok())
    }

    /// Canonical text: every label as `source:key=value`, sorted, joined by `;`.
    pub fn canonical(&self) -> String {
        self.strings().join(";")
    }

    /// Every label as `source:key=value`, sorted.
    pub fn strings(&self) -> Vec<String> {
        self.0.iter().map(Label::to_string).collect()
    }
}

impl FromIterator<Label> for LabelSet {
    fn from_iter<I: IntoIterator<Item = Label>>(iter: I) -> Self {
        let mut set = LabelSet::new();
        for l in iter {
            set.insert(l);
        }
        set
    }
}

impl fmt::Display for LabelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// The labels of a pod: its labels with source `k8s`, its namespace, cluster and service
/// account, and the labels of its namespace (which always include
/// `kubernetes.io/metadata.name=<namespace>`, as Kubernetes sets it on every namespace).
pub fn pod_labels<'a>(
    state: &ClusterState,
    namespace: &str,
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    service_account: Option<&str>,
) -> LabelSet {
    let mut set = LabelSet::new();
    for (k, v) in labels {
        set.insert(Label::k8s(k, v));
    }
    let mut ns_labels = state.namespace_labels(namespace);
    ns_labels
        .entry(NAMESPACE_NAME_LABEL.to_string())
        .or_insert_with(|| namespace.to_string());
    for (k, v) in &ns_labels {
        set.insert(Label::k8s(&format!("{NAMESPACE_LABELS_PREFIX}{k}"), v));
    }
    set.insert(Label::k8s(POD_NAMESPACE, namespace));
    set.insert(Label::k8s(POLICY_CLUSTER, &state.cluster.name));
    if let Some(sa) = service_account {
        set.insert(Label::k8s(POLICY_SERVICE_ACCOUNT, sa));
    }
    set
}

/// The security labels of an endpoint.
pub fn endpoint_labels(state: &ClusterState, ep: &EndpointSpec) -> LabelSet {
    pod_labels(
        state,
        &ep.namespace,
        &ep.labels,
        ep.service_account.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterSpec, NamespaceSpec};
    use std::collections::BTreeMap;

    #[test]
    fn parses_and_prints_labels() {
        let l: Label = "k8s:app=web".parse().unwrap();
        assert_eq!(l, Label::k8s("app", "web"));
        assert_eq!(l.to_string(), "k8s:app=web");
        let r: Label = "reserved:host".parse().unwrap();
        assert_eq!(r.to_string(), "reserved:host");
        let plain: Label = "app=web".parse().unwrap();
        assert_eq!(plain.source, "k8s");
        assert_eq!(
            ":x=1".parse::<Label>().unwrap_err().to_string(),
            "label `:x=1`: the source before `:` is empty"
        );
    }

    #[test]
    fn endpoint_labels_follow_the_architecture() {
        let state = ClusterState {
            cluster: ClusterSpec {
                name: "lab".into(),
                namespaces: vec![NamespaceSpec {
                    name: "shop".into(),
                    labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
                }],
                ..Default::default()
            },
            endpoints: Vec::new(),
        };
        let ep = EndpointSpec {
            name: "web-0".into(),
            namespace: "shop".into(),
            node: "n1".into(),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            service_account: Some("web".into()),
            ips: vec!["10.0.0.1".parse().unwrap()],
            interface: "lxc0".into(),
            netns: None,
            named_ports: BTreeMap::new(),
            workload: None,
        };
        assert_eq!(
            endpoint_labels(&state, &ep).strings(),
            vec![
                "k8s:app=web",
                "k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name=shop",
                "k8s:io.cilium.k8s.namespace.labels.team=a",
                "k8s:io.cilium.k8s.policy.cluster=lab",
                "k8s:io.cilium.k8s.policy.serviceaccount=web",
                "k8s:io.kubernetes.pod.namespace=shop",
            ]
        );
    }
}
