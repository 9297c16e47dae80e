//! Errors of policy loading: every problem is a `Diagnostic` naming the file, the document,
//! the policy (when known), the line and column (where known) and the field path.

use std::fmt;
use std::path::PathBuf;

/// One problem in one policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file (or the name given to `PolicySet::parse_str`).
    pub file: String,
    /// 1-based number of the YAML document in the file.
    pub document: usize,
    /// `Kind namespace/name` when the document got that far.
    pub policy: Option<String>,
    /// 1-based line and column of the offending field, where known.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path, e.g. `spec.ingress[0].toPorts[0].ports[0]`; empty for the document itself.
    pub field: String,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, ":{l}:{c}")?,
            (Some(l), None) => write!(f, ":{l}")?,
            _ => {}
        }
        write!(f, ": document {}", self.document)?;
        if let Some(p) = &self.policy {
            write!(f, " ({p})")?;
        }
        if !self.field.is_empty() {
            write!(f, ", {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Policies that could not be loaded. The whole load is rejected.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// One or more documents are invalid; one diagnostic per line of the message.
    #[error("{}", join(.0))]
    Invalid(Vec<Diagnostic>),
}

impl PolicyError {
    /// The diagnostics (empty for I/O errors).
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Invalid(d) => d,
            PolicyError::Io { .. } => &[],
        }
    }
}

fn join(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_all_parts() {
        let d = Diagnostic {
            file: "p.yaml".into(),
            document: 2,
            policy: Some("CiliumNetworkPolicy default/web".into()),
            line: Some(7),
            column: Some(9),
            field: "spec.ingress[0]".into(),
            message: "boom".into(),
        };
        assert_eq!(
            d.to_string(),
            "p.yaml:7:9: document 2 (CiliumNetworkPolicy default/web), spec.ingress[0]: boom"
        );
        let bare = Diagnostic {
            policy: None,
            line: None,
            column: None,
            field: String::new(),
            ..d
        };
        assert_eq!(bare.to_string(), "p.yaml: document 2: boom");
    }
}
