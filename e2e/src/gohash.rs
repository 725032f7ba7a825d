//! Argo Rollouts' hashes computed by Go itself: a client of `gohash oracle` (e2e/gohash), which decodes each
//! request as client-go does and answers with `hash.ComputePodTemplateHash`, `conditions.ComputeStepHash` and
//! `json.Marshal`.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// One answer of the oracle.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Answer {
    /// The hash, when the request decoded.
    #[serde(default)]
    pub hash: String,
    /// Go's JSON of the decoded value.
    #[serde(default)]
    pub json: String,
    /// Why Go refused the request.
    #[serde(default)]
    pub error: String,
}

/// Which build of the oracle: with the control plane's Kubernetes modules, or with Argo Rollouts' own pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// `gohash`: k8s.io/api as the local control plane.
    ControlPlane,
    /// `gohash-argo`: k8s.io/api as the Argo Rollouts release pins it.
    ArgoRollouts,
}

/// A running oracle.
pub struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    /// Builds the oracle if needed and starts it.
    pub fn start(build: Build) -> Result<Self> {
        let dir = crate::build_gohash()?;
        let name = match build {
            Build::ControlPlane => "gohash",
            Build::ArgoRollouts => "gohash-argo",
        };
        Self::start_binary(&dir.join(name))
    }

    /// Starts the oracle of a given binary.
    pub fn start_binary(binary: &Path) -> Result<Self> {
        let mut child = Command::new(binary)
            .arg("oracle")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdin = child.stdin.take().context("oracle stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("oracle stdout")?);
        Ok(Oracle { child, stdin, stdout })
    }

    /// Asks one request.
    pub fn ask(&mut self, request: &Value) -> Result<Answer> {
        writeln!(self.stdin, "{request}")?;
        self.stdin.flush()?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            bail!("the oracle exited");
        }
        Ok(serde_json::from_str(&line)?)
    }

    /// Argo Rollouts' `rollouts-pod-template-hash` of a pod template (as a Rollout's spec.template holds it).
    pub fn template(&mut self, template: &Value, collision_count: Option<i32>) -> Result<Answer> {
        self.ask(&json!({"template": template, "collisionCount": collision_count}))
    }

    /// Argo Rollouts' `status.currentStepHash` of a canary's steps.
    pub fn steps(&mut self, steps: &Value) -> Result<Answer> {
        self.ask(&json!({ "steps": steps }))
    }

    /// Go's JSON of a quantity string, as `json.Marshal(resource.ParseQuantity(s))` writes it.
    pub fn quantity(&mut self, s: &str) -> Result<Answer> {
        self.ask(&json!({ "quantity": s }))
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
