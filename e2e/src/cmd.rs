//! Running programs from a test: the kindred binaries, docker, kubectl on a node. Each helper
//! collects all output, and the checking ones panic with it, so a failure explains itself.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `cmd` to completion with `stdin` as its input (none: stdin is empty), collecting
/// stdout and stderr.
pub fn output(cmd: &mut Command, stdin: Option<&str>) -> Output {
    let mut child = cmd
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {:?}: {e}", cmd.get_program()));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("collect output")
}

/// Runs a program with optional stdin and collects its output.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Output {
    output(Command::new(program).args(args), stdin)
}

/// `kindred` (or `kubetest2-kindred`: the test passes `env!("CARGO_BIN_EXE_kindred")`, which
/// only the CLI crate's tests can name) with `args` and its kubeconfig, ready to run.
pub fn kindred(exe: &str, args: &[&str], kubeconfig: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new(exe);
    cmd.args(args).env("KUBECONFIG", kubeconfig.as_ref());
    cmd
}

/// stdout and stderr together, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stdout of a command that must have succeeded; else panics naming `what` with all the
/// command's output.
pub fn stdout_ok(out: &Output, what: impl std::fmt::Display) -> String {
    assert!(out.status.success(), "{what} failed:\n{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker <args>`, which must succeed; its stdout.
pub fn docker_out(args: &[&str]) -> String {
    stdout_ok(&run("docker", args, None), format_args!("docker {args:?}"))
}

/// `bash -c script` on a node, which must succeed; its stdout.
pub fn node_sh(node: &str, script: &str) -> String {
    let out = run("docker", &["exec", node, "bash", "-c", script], None);
    stdout_ok(&out, format_args!("`{script}` on {node}"))
}

/// kubectl as cluster admin on a control-plane node (the host needs no kubectl).
pub fn node_kubectl(node: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec![
        "exec",
        "-i",
        node,
        "kubectl",
        "--kubeconfig=/etc/kubernetes/admin.conf",
    ];
    all.extend(args);
    run("docker", &all, stdin)
}

/// A host port that is free now (the OS picks it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free port")
        .port()
}

pub fn write_executable(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
