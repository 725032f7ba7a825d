//! Which objects this process handles: one namespace or all (`--namespace`, `--namespaced`) and the objects of
//! its controller instance (`--instance-id`), as upstream's controller filters them.

use kube::{
    Api, Client, Resource,
    api::{ApiResource, DynamicObject, ListParams},
};

/// Label naming the controller instance that handles a Rollout, AnalysisRun or Experiment.
pub const INSTANCE_ID_LABEL: &str = "argo-rollouts.argoproj.io/controller-instance-id";

/// Where the in-cluster service account's namespace is mounted.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// What this process watches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    /// The one namespace watched; all when None.
    pub namespace: Option<String>,
    /// Namespaced mode: nothing cluster-scoped is read or written, so a namespaced Role is all it needs.
    pub namespaced: bool,
    /// The controller instance; None handles only the objects without the instance label.
    pub instance_id: Option<String>,
}

impl Scope {
    /// An API of `K` in the watched namespace, or in all namespaces.
    pub fn api<K>(&self, client: &Client) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match &self.namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    /// The label selector of the objects of this instance.
    pub fn instance_selector(&self) -> String {
        instance_selector(self.instance_id.as_deref())
    }
}

/// Whether `resource` is served in `namespace`: a list of at most one answers (404 while its CRD is missing or
/// not yet established). The namespaced way to ask whether a CRD is installed, for a process that may not
/// read CustomResourceDefinitions.
pub async fn served_in(
    client: &Client,
    namespace: &str,
    resource: &ApiResource,
) -> Result<bool, kube::Error> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The label selector of a controller instance's objects: `label=<id>`, or `!label` (only the unlabelled
/// objects) for the instance without an id.
pub fn instance_selector(instance_id: Option<&str>) -> String {
    match instance_id.filter(|id| !id.is_empty()) {
        Some(id) => format!("{INSTANCE_ID_LABEL}={id}"),
        None => format!("!{INSTANCE_ID_LABEL}"),
    }
}

/// Why `id` cannot be the value of the instance label, if it cannot (the API server would refuse the
/// selector, and the objects could never carry it).
pub fn invalid_instance_id(id: &str) -> Option<String> {
    let chars_ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends_ok = id.starts_with(|c: char| c.is_ascii_alphanumeric())
        && id.ends_with(|c: char| c.is_ascii_alphanumeric());
    if id.len() > 63 {
        Some(format!("--instance-id {id:?} is longer than 63 characters"))
    } else if !chars_ok || !ends_ok {
        Some(format!(
            "--instance-id {id:?} is not a label value (letters, digits, '-', '_' and '.', beginning and \
             ending with a letter or digit)"
        ))
    } else {
        None
    }
}

/// The namespace of namespaced mode: the first that is set of `--namespace`, `$POD_NAMESPACE`, the in-cluster
/// service account's namespace and the kubeconfig context's namespace (client-go's order, which upstream
/// follows).
pub fn namespaced_namespace(
    flag: Option<&str>,
    pod_namespace: Option<&str>,
    service_account: Option<&str>,
    kubeconfig: Option<&str>,
) -> Option<String> {
    [flag, pod_namespace, service_account, kubeconfig]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|n| !n.is_empty())
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_instance_selector_is_upstreams_instance_id_requirement() {
        let cases = [
            (None, "!argo-rollouts.argoproj.io/controller-instance-id"),
            (Some(""), "!argo-rollouts.argoproj.io/controller-instance-id"),
            (Some("a"), "argo-rollouts.argoproj.io/controller-instance-id=a"),
            (
                Some("team-b.prod"),
                "argo-rollouts.argoproj.io/controller-instance-id=team-b.prod",
            ),
        ];
        for (id, want) in cases {
            assert_eq!(instance_selector(id), want, "instance id {id:?}");
        }
        let scope = Scope {
            instance_id: Some("a".into()),
            ..Scope::default()
        };
        assert_eq!(scope.instance_selector(), instance_selector(Some("a")));
    }

    #[test]
    fn an_instance_id_must_be_a_label_value() {
        for ok in ["a", "b", "team-a", "prod_1.eu", &"x".repeat(63)] {
            assert_eq!(invalid_instance_id(ok), None, "{ok:?}");
        }
        for bad in ["-a", "a-", "a b", "a/b", "a=b", "é", &"x".repeat(64)] {
            assert!(invalid_instance_id(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn the_namespace_of_namespaced_mode_is_the_first_one_set() {
        let cases = [
            ((Some("flag"), Some("pod"), Some("sa"), Some("ctx")), Some("flag")),
            ((None, Some("pod"), Some("sa"), Some("ctx")), Some("pod")),
            ((Some(""), Some(" "), Some("sa\n"), Some("ctx")), Some("sa")),
            ((None, None, None, Some("ctx")), Some("ctx")),
            ((None, Some(""), Some(""), Some("")), None),
            ((None, None, None, None), None),
        ];
        for ((flag, pod, sa, ctx), want) in cases {
            assert_eq!(
                namespaced_namespace(flag, pod, sa, ctx).as_deref(),
                want,
                "{flag:?} {pod:?} {sa:?} {ctx:?}"
            );
        }
    }
}
