//! `weir policy validate FILE|DIR…`: parse and validate policy files as the
//! agent would, without an agent.
//!
//! Text output: one `✓` line per policy (file order, then document order),
//! a summary line, then the notices (`Not enforced yet:`) in the format of
//! the policy crate's diagnostics. On failure, every diagnostic exactly as
//! `weir_policy::Diagnostic` prints it, one per line, and exit code 1.
//!
//! JSON output (`-o json`), the same shape in both cases:
//!
//! ```json
//! {
//!   "valid": true,
//!   "files": ["policies/users.yaml"],
//!   "policies": [{"kind": "CiliumNetworkPolicy", "namespace": "default", "name": "users",
//!                 "file": "policies/users.yaml", "document": 1}],
//!   "notices": [{"kind": "...", "namespace": "...", "name": "...", "file": "...",
//!                "document": 1, "location": "spec.ingress[0]...", "message": "..."}],
//!   "errors": [{"file": "...", "document": 1, "policy": "CiliumNetworkPolicy default/x",
//!               "line": 2, "column": 1, "field": "apiVersion", "message": "...",
//!               "text": "<the diagnostic as printed>"}]
//! }
//! ```
//!
//! `document`, `policy`, `line`, `column` of an error are `null` where
//! unknown (an unreadable file has only `file`, `message` and `text`).

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use weir_policy::{Diagnostic, Policy, PolicyError, PolicySet};

use super::{Format, files, policy_name, pretty_json, print};
use crate::error::CliError;

/// Flags of `weir policy validate`.
#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    /// Policy files, or directories of *.yaml/*.yml files
    #[arg(value_name = "FILE|DIR", required = true)]
    pub paths: Vec<PathBuf>,

    /// Output format
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t,
        help_heading = "Formatting"
    )]
    pub output: Format,
}

/// A policy that parsed, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidPolicy {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub file: String,
    pub document: usize,
}

/// A part of a policy that is parsed but not enforced yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeReport {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub file: String,
    pub document: usize,
    pub location: String,
    pub message: String,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorReport {
    pub file: String,
    pub document: Option<usize>,
    pub policy: Option<String>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: Option<String>,
    pub message: String,
    /// The problem as the text output prints it.
    pub text: String,
}

/// The outcome of a validation (the JSON output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub valid: bool,
    pub files: Vec<String>,
    pub policies: Vec<ValidPolicy>,
    pub notices: Vec<NoticeReport>,
    pub errors: Vec<ErrorReport>,
}

impl ValidateArgs {
    pub fn run(&self) -> Result<(), CliError> {
        let report = validate(&self.paths);
        let text = match self.output {
            Format::Text => render_text(&report),
            Format::Json => pretty_json(&report)?,
        };
        print(&text)?;
        if report.valid {
            return Ok(());
        }
        let n = report.errors.len();
        Err(CliError::runtime(format!(
            "{n} problem{} found: the policies are rejected",
            if n == 1 { "" } else { "s" }
        )))
    }
}

fn origin_order(set: &PolicySet, files: &[String]) -> Vec<Policy> {
    let file_index = |f: &str| files.iter().position(|x| x == f).unwrap_or(usize::MAX);
    let mut policies = set.policies().to_vec();
    policies.sort_by_key(|p| (file_index(&p.origin.file), p.origin.document));
    policies
}

/// Validates the policies the paths stand for, as one set.
pub fn validate(paths: &[PathBuf]) -> Report {
    let files = match files::collect(paths) {
        Ok(files) => files,
        Err(e) => return failed(Vec::new(), &e),
    };
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let set = match PolicySet::load_files(&files) {
        Ok(set) => set,
        Err(e) => return failed(names, &e),
    };
    let policies = origin_order(&set, &names);
    let valid: Vec<ValidPolicy> = policies
        .iter()
        .map(|p| ValidPolicy {
            kind: p.kind.as_str().to_owned(),
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            file: p.origin.file.clone(),
            document: p.origin.document,
        })
        .collect();
    let all = set.notices();
    let mut notices: Vec<NoticeReport> = Vec::new();
    for p in &policies {
        let reference = p.reference();
        let mut mine: Vec<NoticeReport> = all
            .iter()
            .filter(|n| n.policy == reference)
            .cloned()
            .map(|n| NoticeReport {
                kind: reference.kind.clone(),
                namespace: reference.namespace.clone(),
                name: reference.name.clone(),
                file: p.origin.file.clone(),
                document: p.origin.document,
                location: n.location,
                message: n.message,
            })
            .collect();
        notices.append(&mut mine);
    }
    Report {
        valid: true,
        files: names,
        policies: valid,
        notices,
        errors: Vec::new(),
    }
}

fn failed(files: Vec<String>, e: &PolicyError) -> Report {
    let errors = match e {
        PolicyError::Invalid(diags) => diags.iter().map(error_report).collect(),
        PolicyError::Io { path, source } => vec![ErrorReport {
            file: path.display().to_string(),
            document: None,
            policy: None,
            line: None,
            column: None,
            field: None,
            message: source.to_string(),
            text: e.to_string(),
        }],
    };
    Report {
        valid: false,
        files,
        policies: Vec::new(),
        notices: Vec::new(),
        errors,
    }
}

fn error_report(d: &Diagnostic) -> ErrorReport {
    ErrorReport {
        file: d.file.clone(),
        document: Some(d.document),
        policy: d.policy.clone(),
        line: d.line,
        column: d.column,
        field: Some(d.field.clone()).filter(|f| !f.is_empty()),
        message: d.message.clone(),
        text: d.to_string(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A notice in the format of a diagnostic: `file: document N (policy),
/// location: message`.
pub fn notice_line(n: &NoticeReport) -> String {
    format!(
        "{}: document {} ({}), {}: {}",
        n.file,
        n.document,
        policy_name(&n.kind, &n.namespace, &n.name),
        n.location,
        n.message
    )
}

/// The text output.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    if !report.valid {
        for e in &report.errors {
            out.push_str(&e.text);
            out.push('\n');
        }
        return out;
    }
    for p in &report.policies {
        out.push_str(&format!(
            "✓ {} ({}, document {})\n",
            policy_name(&p.kind, &p.namespace, &p.name),
            p.file,
            p.document
        ));
    }
    if report.files.is_empty() {
        out.push_str("No policy files found.\n");
    } else if report.policies.is_empty() {
        out.push_str(&format!(
            "No policies found in {}.\n",
            plural(report.files.len(), "file", "files")
        ));
    } else {
        let n = report.policies.len();
        out.push_str(&format!(
            "{} in {} {} valid.\n",
            plural(n, "policy", "policies"),
            plural(report.files.len(), "file", "files"),
            if n == 1 { "is" } else { "are" }
        ));
    }
    if !report.notices.is_empty() {
        out.push_str(
            "\nNot enforced yet (parsed and accepted, but weir does not enforce these parts):\n",
        );
        for n in &report.notices {
            out.push_str(&format!("  {}\n", notice_line(n)));
        }
    }
    out
}
