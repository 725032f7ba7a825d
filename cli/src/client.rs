//! Connecting as kubectl does: `--kubeconfig` (else $KUBECONFIG, else ~/.kube/config, else in-cluster),
//! `--context`, `--cluster`, `--user`, and the namespace from `-n`, else the context's, else "default".

use anyhow::{Context, Result};
use kube::{
    Client, Config,
    config::{KubeConfigOptions, Kubeconfig},
};

/// The kubeconfig flags every command takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KubeFlags {
    /// Path to the kubeconfig file to use for CLI requests.
    #[arg(long, global = true, env = "KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The name of the kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The name of the kubeconfig cluster to use.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The name of the kubeconfig user to use.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// If present, the namespace scope for this CLI request.
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

/// A connected client and the namespace commands act in.
#[derive(Clone)]
pub struct Ctx {
    /// The API client.
    pub client: Client,
    /// The namespace from `-n`, the context, or "default".
    pub namespace: String,
}

impl KubeFlags {
    fn options(&self) -> KubeConfigOptions {
        KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        }
    }

    /// The client config, read the way kubectl reads it.
    pub async fn config(&self) -> Result<Config> {
        let options = self.options();
        let config = match &self.kubeconfig {
            Some(path) => {
                // $KUBECONFIG may list several files; the first one that exists is used, as the merge of
                // kubectl would give for a single-file setup.
                let path = std::env::split_paths(path)
                    .find(|p| p.exists())
                    .unwrap_or_else(|| path.clone());
                let kc = Kubeconfig::read_from(&path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                Config::from_custom_kubeconfig(kc, &options).await?
            }
            None => match Config::from_kubeconfig(&options).await {
                Ok(c) => c,
                Err(kube_err) => Config::incluster()
                    .map_err(|_| anyhow::anyhow!("no kubeconfig and not in a cluster: {kube_err}"))?,
            },
        };
        Ok(config)
    }

    /// Connects and settles the namespace.
    pub async fn connect(&self) -> Result<Ctx> {
        let config = self.config().await?;
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config)?;
        Ok(Ctx { client, namespace })
    }
}
