//! Running the built `kubectl-sluice` the way a user runs `kubectl sluice ...`: against a kubeconfig and a
//! namespace, capturing what it printed and how it exited.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result};

/// What one run of the plugin printed and how it exited.
#[derive(Debug, Clone)]
pub struct Run {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// The plugin, bound to a cluster and a namespace.
#[derive(Debug, Clone)]
pub struct Plugin {
    /// The `kubectl-sluice` binary.
    pub binary: PathBuf,
    /// The kubeconfig it connects with.
    pub kubeconfig: PathBuf,
    /// The namespace passed with `-n`.
    pub namespace: String,
}

impl Plugin {
    /// The plugin `binary` against the cluster of `kubeconfig`, in `namespace`.
    pub fn new(binary: &Path, kubeconfig: &Path, namespace: &str) -> Self {
        Self {
            binary: binary.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_string(),
        }
    }

    /// The plugin against a server that refuses connections (127.0.0.1:9), its kubeconfig written into `dir`.
    pub fn unreachable(binary: &Path, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
",
        )?;
        Ok(Self::new(binary, &kubeconfig, "default"))
    }

    /// `kubectl sluice --kubeconfig <file> -n <ns> ARGS`.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["-n", &self.namespace])
            .args(args);
        cmd
    }

    /// Runs to completion.
    pub fn run(&self, args: &[&str]) -> Result<Run> {
        let out = self
            .command(args)
            .output()
            .with_context(|| format!("running {} {}", self.binary.display(), args.join(" ")))?;
        Ok(Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs and requires exit 0; the standard output.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let run = self.run(args)?;
        anyhow::ensure!(
            run.code == 0,
            "kubectl sluice {} exited {}: {}{}",
            args.join(" "),
            run.code,
            run.stdout,
            run.stderr
        );
        Ok(run.stdout)
    }
}

/// A long-running child (a `--watch`) whose standard output is collected as it prints, so a test can wait
/// for what is on screen before it acts.
pub struct Watching {
    child: std::process::Child,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Watching {
    /// Spawns `cmd` with its standard output piped and read on a thread.
    pub fn spawn(mut cmd: Command) -> Result<Self> {
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("spawning a watch")?;
        let mut out = child.stdout.take().context("piped stdout")?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("output lock").extend_from_slice(&buf[..n]);
            }
        });
        Ok(Self {
            child,
            seen,
            reader: Some(reader),
        })
    }

    /// What it printed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("output lock")).into_owned()
    }

    /// Waits up to `secs` until what it printed satisfies `ready`.
    pub async fn wait_for(&self, what: &str, secs: u64, ready: impl Fn(&str) -> bool) -> Result<()> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !ready(&self.text()) {
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "{what} not printed within {secs}s; printed:\n{}",
                self.text()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Ok(())
    }

    /// Writes `bytes` to its standard input (a terminal's ^C when it runs under `script`).
    pub fn type_in(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().context("piped stdin")?;
        stdin.write_all(bytes)?;
        stdin.flush()?;
        Ok(())
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit: the exit code (-1 when killed) and everything printed.
    pub async fn finish(mut self) -> Result<(i32, String)> {
        let mut child = self.child;
        let reader = self.reader.take();
        let status = tokio::task::spawn_blocking(move || {
            let status = child.wait();
            if let Some(r) = reader {
                let _ = r.join();
            }
            status
        })
        .await??;
        let text = String::from_utf8_lossy(&self.seen.lock().expect("output lock")).into_owned();
        Ok((status.code().unwrap_or(-1), text))
    }
}
