//! Running ginkgo: its output is streamed to stderr as it comes (dots for passed specs, the
//! full story of each failure) and copied to `<artifacts>/ginkgo.log`.

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
    let (a, b) = tokio::join!(tee(out, file.clone(), quiet), tee(err, file.clone(), quiet));
    a?;
    b?;
    let status = child.wait().await.map_err(|e| Error::Io {
        path: inv.ginkgo.display().to_string(),
        source: e,
    })?;
    file.lock().await.flush().await.ok();
    Ok(status.code().unwrap_or(-1))
}

/// Copies a stream to our stderr (unless quiet) and the log as bytes arrive, so ginkgo's
/// progress dots show up live.
async fn tee(
    mut from: impl tokio::io::AsyncRead + Unpin,
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
