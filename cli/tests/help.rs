//! `--help` of every command, snapshot-tested so that the documented flags
//! cannot drift silently. After an intended change, refresh the files with
//! `WEIR_UPDATE_SNAPSHOTS=1 cargo test -p weir-cli --test help` and commit
//! them (`cli/tests/help/*.txt`).

mod common;

use std::process::Command;

/// Every command whose help is snapshotted. Add new subcommands here.
const COMMANDS: &[&[&str]] = &[
    &[],
    &["observe"],
    &["observe", "flows"],
    &["status"],
    &["list"],
    &["list", "nodes"],
    &["list", "namespaces"],
    &["policy"],
    &["policy", "validate"],
    &["policy", "get"],
    &["policy", "trace"],
    &["lab"],
    &["lab", "up"],
    &["lab", "down"],
];

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .arg("--help")
        .env_remove("WEIR_SERVER")
        .env("COLUMNS", "100")
        .output()
        .expect("running weir");
    assert!(out.status.success(), "weir {args:?} --help failed: {out:?}");
    assert!(
        out.stderr.is_empty(),
        "weir {args:?} --help wrote to stderr"
    );
    String::from_utf8(out.stdout).expect("utf-8 help")
}

#[test]
fn help_snapshots() {
    let failures: Vec<String> = COMMANDS
        .iter()
        .filter_map(|args| {
            let name = if args.is_empty() {
                "weir".to_owned()
            } else {
                format!("weir-{}", args.join("-"))
            };
            common::check_snapshot("help", &format!("{name}.txt"), &help(args)).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn usage_errors_exit_64() {
    for args in [
        &["observe", "--no-such-flag"][..],
        &["observe", "--verdict", "NOPE"],
        &["bogus"],
        &["policy"],
        &["policy", "validate"],
        &["policy", "get", "-o", "yaml"],
        &["policy", "trace", "--src-ip", "10.0.0.1"],
        &[
            "policy", "trace", "--src-ip", "10.0.0.1", "--dst-ip", "10.0.0.2", "--dport", "x",
        ],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .output()
            .expect("running weir");
        assert_eq!(out.status.code(), Some(64), "weir {args:?}: {out:?}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("--version")
        .output()
        .expect("running weir");
    assert_eq!(out.status.code(), Some(0));
}
