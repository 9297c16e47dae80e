//! `weir-agent --help`, snapshot-tested so the documented flags cannot drift: the text is kept in
//! `tests/help/weir-agent.txt` and embedded in `docs/agent.md`. After an intended change,
//! refresh both with `WEIR_UPDATE_SNAPSHOTS=1 cargo test -p weir-flow-agent --test help` and
//! commit them.

use std::path::PathBuf;
use std::process::{Command, Output};

use clap::CommandFactory;
use weir_flow_agent::config::AgentConfig;

const AGENT: &str = env!("CARGO_BIN_EXE_weir-agent");
/// The line before the help text's fenced block in docs/agent.md.
const DOCS_MARKER: &str =
    "<!-- weir-agent --help: generated, checked by flow-agent/tests/help.rs -->";

fn updating() -> bool {
    std::env::var_os("WEIR_UPDATE_SNAPSHOTS").is_some_and(|v| v == "1")
}

fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The agent's environment variables (`WEIR_NODE_NAME`, ...).
fn agent_env_vars() -> Vec<String> {
    AgentConfig::command()
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .collect()
}

/// The help text; clap shows the values of set variables in it, so none may be set.
fn help() -> String {
    let set: Vec<String> = agent_env_vars()
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    assert!(
        set.is_empty(),
        "unset {} to check the help text: --help shows the values of the agent's variables",
        set.join(", ")
    );
    AgentConfig::help()
}

/// The lines that differ between `expected` and `actual`, as a unified diff's one hunk.
fn diff(expected: &str, actual: &str) -> String {
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let head = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let tail = old[head..]
        .iter()
        .rev()
        .zip(new[head..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let (old_mid, new_mid) = (&old[head..old.len() - tail], &new[head..new.len() - tail]);
    if old_mid.is_empty() && new_mid.is_empty() {
        return "(the lines are equal: the difference is in line endings or the last newline)"
            .into();
    }
    let mut out = format!(
        "@@ -{},{} +{},{} @@\n",
        head + 1,
        old_mid.len(),
        head + 1,
        new_mid.len()
    );
    for line in old_mid {
        out.push_str(&format!("-{line}\n"));
    }
    for line in new_mid {
        out.push_str(&format!("+{line}\n"));
    }
    out
}

fn stale(what: &str, expected: &str, actual: &str) -> String {
    format!(
        "{what} is not the current `weir-agent --help`:\n{}\nIf the change is intended, run \
         `WEIR_UPDATE_SNAPSHOTS=1 cargo test -p weir-flow-agent --test help` and commit the result.",
        diff(expected, actual)
    )
}

#[test]
fn help_matches_the_snapshot() {
    let path = repo_path("tests/help/weir-agent.txt");
    let actual = help();
    if updating() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with WEIR_UPDATE_SNAPSHOTS=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{}",
        stale(&path.display().to_string(), &expected, &actual)
    );
}

/// docs/agent.md: the fenced block after [`DOCS_MARKER`], as (start, end) byte offsets of its
/// content.
fn docs_block(docs: &str) -> (usize, usize) {
    let marker = docs
        .find(DOCS_MARKER)
        .unwrap_or_else(|| panic!("docs/agent.md lacks the line {DOCS_MARKER}"));
    let open = "```text\n";
    let start = docs[marker..]
        .find(open)
        .map(|i| marker + i + open.len())
        .expect("a ```text block after the marker in docs/agent.md");
    let end = docs[start..]
        .find("\n```\n")
        .map(|i| start + i + 1)
        .expect("the end of the help block in docs/agent.md");
    (start, end)
}

#[test]
fn docs_show_the_current_help() {
    let path = repo_path("../docs/agent.md");
    let docs = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (start, end) = docs_block(&docs);
    let actual = help();
    if updating() {
        let updated = format!("{}{actual}{}", &docs[..start], &docs[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    let shown = &docs[start..end];
    assert!(
        shown == actual,
        "{}",
        stale("the help block of docs/agent.md", shown, &actual)
    );
}

fn run(args: &[&str]) -> Output {
    let mut cmd = Command::new(AGENT);
    cmd.args(args);
    for var in agent_env_vars() {
        cmd.env_remove(var);
    }
    cmd.output().expect("running weir-agent")
}

#[test]
fn help_and_version_exit_0() {
    let out = run(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "--help wrote to stderr: {out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), help());

    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("weir-agent {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn usage_errors_exit_64_naming_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("agent.yaml");
    let missing = missing.to_str().unwrap();
    let required = [
        "--node-name",
        "n1",
        "--state-dir",
        "/s",
        "--policy-dir",
        "/p",
    ];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        required.iter().chain(extra).copied().collect()
    };
    let cases: Vec<(Vec<&str>, String)> = vec![
        (vec!["--bogus"], "unexpected argument '--bogus'".into()),
        (vec![], "--node-name <NODE_NAME>".into()),
        (
            with(&["--poll-interval", "5 parsecs"]),
            "invalid duration unit ` parsecs`".into(),
        ),
        (
            with(&["--log-format", "xml"]),
            "invalid value 'xml' for '--log-format <LOG_FORMAT>'".into(),
        ),
        (
            vec!["--config", missing],
            format!("weir-agent: {missing}: No such file or directory"),
        ),
    ];
    for (args, message) in cases {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "weir-agent {args:?}: {out:?}");
        assert!(
            stderr.contains(&message),
            "weir-agent {args:?}: stderr lacks {message:?}:\n{stderr}"
        );
        assert!(out.stdout.is_empty(), "weir-agent {args:?}: {out:?}");
    }
}

#[test]
fn the_diff_shows_the_changed_lines() {
    assert_eq!(
        diff("a\nb\nc\nd\n", "a\nB\nB2\nB3\nd\n"),
        "@@ -2,2 +2,3 @@\n-b\n-c\n+B\n+B2\n+B3\n"
    );
    assert_eq!(diff("a\n", "a\nb\n"), "@@ -2,0 +2,1 @@\n+b\n");
    assert!(diff("a\n", "a").contains("last newline"));
}
