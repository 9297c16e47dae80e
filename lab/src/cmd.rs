//! Running `ip` (iproute2) and other commands, with errors that show the command and its stderr.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use crate::error::LabError;

/// The command line, for messages: program and arguments, quoted where needed.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs a command to completion; a non-zero exit is an error carrying its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, LabError> {
    let command = describe(cmd);
    tracing::debug!(%command, "run");
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Spawn {
            command: command.clone(),
            source,
        })?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(LabError::Command {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// `ip <args>`.
pub(crate) fn ip(args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").args(args)).map(drop)
}

/// `ip -n <netns> <args>`: the command acts inside the namespace, nothing touches the host's.
pub(crate) fn ip_in(netns: &str, args: &[&str]) -> Result<(), LabError> {
    run(Command::new("ip").arg("-n").arg(netns).args(args)).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_the_command_and_its_stderr() {
        let err =
            run(Command::new("sh").args(["-c", "echo 'no such thing' >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`sh -c 'echo '\\''no such thing'\\'' >&2; exit 3'`"),
            "{text}"
        );
        assert!(text.contains("exit status: 3"), "{text}");
        assert!(text.ends_with("no such thing"), "{text}");
        let err = run(&mut Command::new("/nonexistent/weir-lab-tool")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot run `/nonexistent/weir-lab-tool`"),
            "{err}"
        );
    }
}
