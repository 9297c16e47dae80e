//! `PolicySet`: every policy of a policy directory, parsed, validated and translated.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use crate::compiled::Notice;
use crate::error::{Diagnostic, PolicyError};
use crate::knp::network_policy_spec;
use crate::model::{Origin, Policy, PolicyKind, display_name};
use crate::schema::{CiliumPolicyDoc, Metadata, NetworkPolicyDoc};
use crate::translate::{Ctx, cilium_specs};
use crate::yaml::{Document, locate, serde_problem, split_documents, suggest};

const CILIUM_API: &str = "cilium.io/v2";
const K8S_API: &str = "networking.k8s.io/v1";

/// A validated set of policies, sorted by (kind, namespace, name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    /// An empty set (no policy: every endpoint is default-allow).
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses the documents of one text; `name` stands for the file in diagnostics.
    pub fn parse_str(name: &str, text: &str) -> Result<Self, PolicyError> {
        let mut loader = Loader::default();
        loader.parse(name, text);
        loader.finish()
    }

    /// Parses several texts as one set, each named (in diagnostics and `Policy::origin`) by
    /// the name paired with it, e.g. files read elsewhere such as the ones an agent reports.
    /// Any problem in any of them rejects the whole set, as for [`PolicySet::load_files`].
    pub fn parse_sources<N: AsRef<str>, T: AsRef<str>>(
        sources: impl IntoIterator<Item = (N, T)>,
    ) -> Result<Self, PolicyError> {
        let mut loader = Loader::default();
        for (name, text) in sources {
            loader.parse(name.as_ref(), text.as_ref());
        }
        loader.finish()
    }

    /// Reads and parses these files; any problem in any of them rejects the whole set.
    pub fn load_files<P: AsRef<Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<Self, PolicyError> {
        let mut sources = Vec::new();
        for path in paths {
            let path = path.as_ref();
            let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            sources.push((path.display().to_string(), text));
        }
        Self::parse_sources(sources)
    }

    /// Reads every `*.yaml` / `*.yml` file of a directory (not recursive), in name order.
    /// A missing directory holds no policies.
    pub fn load_dir(dir: &Path) -> Result<Self, PolicyError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new()),
            Err(source) => {
                return Err(PolicyError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| PolicyError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let path = entry.path();
            let yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            if yaml && path.is_file() {
                files.push(path);
            }
        }
        files.sort();
        Self::load_files(files)
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The policy with this kind, namespace (empty for cluster-wide) and name.
    pub fn get(&self, kind: PolicyKind, namespace: &str, name: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.kind == kind && p.namespace == namespace && p.name == name)
    }

    /// What the policies ask for that weir parses but does not enforce, sorted.
    pub fn notices(&self) -> Vec<Notice> {
        let mut out: Vec<Notice> = self
            .policies
            .iter()
            .flat_map(|p| {
                p.notices.iter().map(|n| Notice {
                    policy: p.reference(),
                    location: n.location.clone(),
                    message: n.message.clone(),
                })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[derive(Default)]
struct Loader {
    policies: Vec<(Policy, Option<(usize, usize)>)>,
    diagnostics: Vec<Diagnostic>,
}

/// What is known about a document while it is being read.
struct DocCtx<'a> {
    file: &'a str,
    doc: &'a Document,
    policy: Option<String>,
}

impl DocCtx<'_> {
    fn diag(&self, field: &str, message: String, pos: Option<(usize, usize)>) -> Diagnostic {
        let pos = pos.or_else(|| locate(&self.doc.text, field));
        Diagnostic {
            file: self.file.to_string(),
            document: self.doc.number,
            policy: self.policy.clone(),
            line: pos.map(|p| p.0),
            column: pos.map(|p| p.1),
            field: field.to_string(),
            message,
        }
    }

    fn serde(&self, err: &serde_yaml::Error) -> Diagnostic {
        let p = serde_problem(err);
        let pos = p.line.zip(p.column);
        self.diag(&p.field, p.message, pos)
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for k in path {
        cur = cur.get(k)?;
    }
    cur.as_str()
}

impl Loader {
    fn parse(&mut self, file: &str, text: &str) {
        for doc in split_documents(text) {
            if doc.has_content {
                self.document(file, &doc);
            }
        }
    }

    fn document(&mut self, file: &str, doc: &Document) {
        let mut dc = DocCtx {
            file,
            doc,
            policy: None,
        };
        let value: Value = match serde_yaml::from_str(&doc.text) {
            Ok(v) => v,
            Err(e) => {
                self.diagnostics.push(dc.serde(&e));
                return;
            }
        };
        if value.is_null() {
            return;
        }
        if !value.is_mapping() {
            self.diagnostics.push(dc.diag(
                "",
                "a policy document is a mapping with `apiVersion`, `kind`, `metadata` and `spec`".into(),
                None,
            ));
            return;
        }
        let kinds = [
            PolicyKind::CiliumNetworkPolicy,
            PolicyKind::CiliumClusterwideNetworkPolicy,
            PolicyKind::NetworkPolicy,
        ];
        let Some(kind_text) = str_at(&value, &["kind"]) else {
            self.diagnostics.push(dc.diag(
                "kind",
                "missing field `kind`: use CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy"
                    .into(),
                None,
            ));
            return;
        };
        let Some(kind) = kinds.iter().copied().find(|k| k.as_str() == kind_text) else {
            let names: Vec<String> = kinds.iter().map(|k| k.as_str().to_string()).collect();
            let hint = match suggest(kind_text, &names) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "weir reads CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy and NetworkPolicy".into(),
            };
            self.diagnostics.push(dc.diag(
                "kind",
                format!("kind `{kind_text}` is not a policy kind: {hint}"),
                None,
            ));
            return;
        };
        let name = str_at(&value, &["metadata", "name"])
            .unwrap_or("")
            .to_string();
        let given_ns = str_at(&value, &["metadata", "namespace"]).map(str::to_string);
        let namespace = if kind.is_namespaced() {
            given_ns.clone().unwrap_or_else(|| "default".to_string())
        } else {
            String::new()
        };
        if !name.is_empty() {
            dc.policy = Some(display_name(kind, &namespace, &name));
        }
        let mut diags = Vec::new();

        let expected_api = if kind == PolicyKind::NetworkPolicy {
            K8S_API
        } else {
            CILIUM_API
        };
        match str_at(&value, &["apiVersion"]) {
            Some(api) if api == expected_api => {}
            Some(api) => diags.push(dc.diag(
                "apiVersion",
                format!("apiVersion `{api}` is not supported: use `{expected_api}`"),
                None,
            )),
            None => diags.push(dc.diag(
                "apiVersion",
                format!("missing field `apiVersion`: use `{expected_api}`"),
                None,
            )),
        }

        let mut ctx = Ctx::new(kind, &namespace);
        let (metadata, specs) = if kind == PolicyKind::NetworkPolicy {
            match serde_yaml::from_str::<NetworkPolicyDoc>(&doc.text) {
                Ok(d) => {
                    let specs = network_policy_spec(d.spec.as_ref(), &mut ctx);
                    (d.metadata, specs)
                }
                Err(e) => {
                    diags.push(dc.serde(&e));
                    self.diagnostics.extend(diags);
                    return;
                }
            }
        } else {
            match serde_yaml::from_str::<CiliumPolicyDoc>(&doc.text) {
                Ok(d) => {
                    let specs = cilium_specs(d.spec.as_ref(), d.specs.as_deref(), &mut ctx);
                    (d.metadata, specs)
                }
                Err(e) => {
                    diags.push(dc.serde(&e));
                    self.diagnostics.extend(diags);
                    return;
                }
            }
        };
        metadata_problems(kind, &metadata, &mut ctx);
        for p in &ctx.problems {
            diags.push(dc.diag(&p.field, p.message.clone(), None));
        }
        if !diags.is_empty() {
            self.diagnostics.extend(diags);
            return;
        }
        let mut notices = ctx.notices;
        notices.sort();
        notices.dedup();
        let policy = Policy {
            kind,
            namespace,
            name,
            labels: metadata.labels,
            annotations: metadata.annotations,
            origin: Origin {
                file: file.to_string(),
                document: doc.number,
            },
            specs,
            notices,
        };
        let pos = locate(&doc.text, "metadata.name");
        self.policies.push((policy, pos));
    }

    fn finish(mut self) -> Result<PolicySet, PolicyError> {
        let mut seen: BTreeMap<(PolicyKind, String, String), Origin> = BTreeMap::new();
        for (p, pos) in &self.policies {
            let key = (p.kind, p.namespace.clone(), p.name.clone());
            if let Some(first) = seen.get(&key) {
                self.diagnostics.push(Diagnostic {
                    file: p.origin.file.clone(),
                    document: p.origin.document,
                    policy: Some(p.display_name()),
                    line: pos.map(|x| x.0),
                    column: pos.map(|x| x.1),
                    field: "metadata.name".into(),
                    message: format!(
                        "{} is also defined in {} (document {}): names are unique per kind and namespace",
                        p.display_name(),
                        first.file,
                        first.document
                    ),
                });
            } else {
                seen.insert(key, p.origin.clone());
            }
        }
        if !self.diagnostics.is_empty() {
            return Err(PolicyError::Invalid(self.diagnostics));
        }
        let mut policies: Vec<Policy> = self.policies.into_iter().map(|(p, _)| p).collect();
        policies
            .sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        Ok(PolicySet { policies })
    }
}

fn metadata_problems(kind: PolicyKind, m: &Metadata, ctx: &mut Ctx) {
    match m.name.as_deref() {
        None | Some("") => {
            let extra = if m.generate_name.is_some() {
                " (`generateName` needs an API server: write the name)"
            } else {
                ""
            };
            ctx.error("metadata", format!("missing field `name`{extra}"));
        }
        Some(name) if !is_dns_subdomain(name) => ctx.error(
            "metadata.name",
            format!(
                "`{name}` is not a valid name: use lower-case letters, digits, `-` and `.`, starting and ending with a letter or digit"
            ),
        ),
        _ => {}
    }
    match (kind.is_namespaced(), m.namespace.as_deref()) {
        (false, Some(ns)) => ctx.error(
            "metadata.namespace",
            format!(
                "a {kind} is cluster-wide and has no namespace: remove `namespace: {ns}` (or use a CiliumNetworkPolicy)"
            ),
        ),
        (true, Some(ns)) if !is_dns_label(ns) => ctx.error(
            "metadata.namespace",
            format!("`{ns}` is not a valid namespace name"),
        ),
        _ => {}
    }
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: web\nspec:\n  endpointSelector: {}\n";

    #[test]
    fn parse_sources_names_each_source() {
        let set = PolicySet::parse_sources([("a.yaml", WEB)]).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.policies()[0].origin.file, "a.yaml");
        let err = PolicySet::parse_sources([("a.yaml", WEB), ("b.yaml", WEB)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "b.yaml:4:3: document 1 (CiliumNetworkPolicy default/web), metadata.name: CiliumNetworkPolicy default/web is also defined in a.yaml (document 1): names are unique per kind and namespace"
        );
    }
}
