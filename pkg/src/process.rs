//! Running host programs (debootstrap, go) as part of a step: their output is streamed with `-v`,
//! and the last lines are kept so a failure can show why without a rerun.

use std::collections::VecDeque;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::ui::Step;

/// How many trailing output lines a failure shows.
const TAIL_LINES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not start `{command}`: {source}; is it installed? (hack/setup-host.sh installs what kindred needs)")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}); its last output lines:\n{tail}")]
    Failed {
        command: String,
        status: String,
        tail: String,
    },
}

/// What a successful command printed on stdout.
#[derive(Debug, Default)]
pub struct Captured {
    pub stdout: String,
}

/// Runs `cmd` to completion, streaming each output line to `step.detail` and keeping the tail
/// for the error. Stdout is also captured whole for callers that parse it.
pub async fn run(mut cmd: Command, step: &Step) -> Result<Captured, ProcessError> {
    let command = describe(&cmd);
    step.detail(format!("$ {command}"));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        command: command.clone(),
        source,
    })?;

    let mut out = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
    let mut err = BufReader::new(child.stderr.take().expect("stderr is piped")).lines();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut stdout = String::new();
    let (mut out_open, mut err_open) = (true, true);
    let keep = |line: String, tail: &mut VecDeque<String>| {
        step.detail(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    };
    while out_open || err_open {
        tokio::select! {
            line = out.next_line(), if out_open => match line {
                Ok(Some(line)) => { stdout.push_str(&line); stdout.push('\n'); keep(line, &mut tail); }
                _ => out_open = false,
            },
            line = err.next_line(), if err_open => match line {
                Ok(Some(line)) => keep(line, &mut tail),
                _ => err_open = false,
            },
        }
    }
    let status = child.wait().await.map_err(|source| ProcessError::Spawn {
        command: command.clone(),
        source,
    })?;
    if status.success() {
        Ok(Captured { stdout })
    } else {
        Err(ProcessError::Failed {
            command,
            status: status.to_string(),
            tail: tail
                .into_iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
        })
    }
}

/// The command line as a user could retype it (environment overrides first).
pub fn describe(cmd: &Command) -> String {
    let std = cmd.as_std();
    let mut parts: Vec<String> = std
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())))
        .collect();
    parts.push(std.get_program().to_string_lossy().into_owned());
    parts.extend(std.get_args().map(|a| {
        let a = a.to_string_lossy();
        if a.contains(' ') {
            format!("'{a}'")
        } else {
            a.into_owned()
        }
    }));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::Ui;

    #[tokio::test]
    async fn captures_stdout_and_reports_failure_tail() {
        let ui = Ui::quiet();
        let step = ui.step("test");
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo hello; echo warn >&2"]);
        assert_eq!(run(ok, &step).await.unwrap().stdout, "hello\n");

        let mut bad = Command::new("sh");
        bad.args(["-c", "echo first; echo 'the reason' >&2; exit 3"]);
        let err = run(bad, &step).await.unwrap_err().to_string();
        assert!(err.contains("the reason"), "{err}");
        assert!(err.contains("exit status: 3"), "{err}");
        step.done();
    }

    #[tokio::test]
    async fn missing_program_is_named() {
        let step = Ui::quiet().step("test");
        let err = run(Command::new("kindred-no-such-program"), &step)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("kindred-no-such-program"));
        step.done();
    }

    #[test]
    fn describe_quotes_spaces_and_shows_env() {
        let mut cmd = Command::new("go");
        cmd.env("CGO_ENABLED", "0")
            .args(["build", "-ldflags", "-s -w"]);
        assert_eq!(describe(&cmd), "CGO_ENABLED=0 go build -ldflags '-s -w'");
    }
}
