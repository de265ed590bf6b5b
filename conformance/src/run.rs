//! Running ginkgo: its output is streamed to stderr as it comes (dots for passed specs, the
//! full story of each failure) and copied to `<artifacts>/ginkgo.log`. ginkgo runs in its own
//! process group; SIGINT or SIGTERM to kindred is passed on as one SIGINT (ginkgo stops the
//! specs, cleans up and still writes the report), a second one kills it. Either way kindred
//! goes on to undo what it set up for the run and to summarise what ran.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::ginkgo::Invocation;
use crate::Error;

/// Runs the invocation to the end; returns ginkgo's exit code (non-zero when a spec failed).
pub async fn run_ginkgo(inv: &Invocation, log: &Path, quiet: bool) -> Result<i32, Error> {
    let mut cmd = Command::new(&inv.ginkgo);
    cmd.args(inv.args())
        .current_dir(&inv.artifacts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Its own process group: a Ctrl-C on the terminal reaches kindred only, which passes it on
    // once (two at once would make ginkgo skip its cleanup).
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| Error::Io {
        path: inv.ginkgo.display().to_string(),
        source: e,
    })?;
    let file = tokio::fs::File::create(log).await.map_err(|e| Error::Io {
        path: log.display().to_string(),
        source: e,
    })?;
    let file = std::sync::Arc::new(tokio::sync::Mutex::new(file));
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let copy_out = tokio::spawn(tee(out, file.clone(), quiet));
    let copy_err = tokio::spawn(tee(err, file.clone(), quiet));
    let status = wait_passing_signals(&mut child)
        .await
        .map_err(|e| Error::Io {
            path: inv.ginkgo.display().to_string(),
            source: e,
        })?;
    for copy in [copy_out, copy_err] {
        copy.await
            .map_err(|e| Error::Msg(format!("copying ginkgo's output: {e}")))??;
    }
    file.lock().await.flush().await.ok();
    Ok(status.code().unwrap_or(-1))
}

/// Waits for ginkgo, passing the first SIGINT/SIGTERM on as SIGINT and killing it on the next.
async fn wait_passing_signals(
    child: &mut tokio::process::Child,
) -> std::io::Result<std::process::ExitStatus> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut received = 0;
    loop {
        let name = tokio::select! {
            status = child.wait() => return status,
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        };
        received += 1;
        if received == 1 {
            eprintln!(
                "\n{name}: asking ginkgo to stop the specs and clean up (again to kill it at once)"
            );
            if let Some(pid) = child.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
        } else {
            eprintln!("\n{name}: killing ginkgo");
            let _ = child.start_kill();
        }
    }
}

/// Copies a stream to our stderr (unless quiet) and the log as bytes arrive, so ginkgo's
/// progress dots show up live.
async fn tee(
    mut from: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    log: std::sync::Arc<tokio::sync::Mutex<tokio::fs::File>>,
    quiet: bool,
) -> Result<(), Error> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return Ok(()),
            Ok(n) => n,
        };
        if !quiet {
            use std::io::Write;
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&buf[..n]);
            let _ = stderr.flush();
        }
        log.lock()
            .await
            .write_all(&buf[..n])
            .await
            .map_err(|e| Error::Msg(format!("writing the ginkgo log: {e}")))?;
    }
}
