//! `helm template` of a chart in the repository, as Argo CD runs it (`AC:reposerver/repository/repository.go`:
//! `helmTemplate`, `getResolvedValueFiles`; `AC:util/helm/cmd.go`: `template`, `cleanSetParameters`;
//! `AC:util/io/path/resolved.go`: `ResolveValueFilePathOrUrl`).
//!
//! - The command is [`template_args`]: `helm template . --name-template <release> --namespace <ns>
//!   [--kube-version] --set… --set-string… --set-file… --values <valueFiles>… [--values <inline values>]
//!   [--api-versions…] [--include-crds unless skipCrds] [--skip-schema-validation] [--skip-tests]`, run in the
//!   chart directory. The release is `releaseName`, else the Application's name; the namespace is
//!   `helm.namespace`, else the destination namespace; `kubeVersion` and `apiVersions` of the source replace
//!   the cluster's ([`RenderContext`]), and a `+` is dropped from the Kubernetes version as upstream does.
//! - Precedence is Helm's own: parameters (`--set`, then `--set-string` for `forceString`, then
//!   `--set-file`) > the inline values > the value files in order > the chart's `values.yaml`. The inline
//!   values are `valuesObject` when set, else `values`, written to a private temporary file. A parameter
//!   named twice keeps its last value; commas in a value are escaped unless it is a `{…}` list.
//! - Parameter values, value file paths and file parameter paths expand the build environment
//!   ([`BuildEnv::subst`]).
//! - A value file or file parameter path is relative to the chart directory, or to the repository root when
//!   it starts with `/`; `..` climbing above the root, or a symlink resolving outside it, is refused. An
//!   `http(s)://` value file is passed to Helm as it is; another URL scheme is refused. A value file that does
//!   not exist is left out with `ignoreMissingValueFiles`, else Helm reports it.
//! - Dependencies must be vendored (`charts/`): Sluice does not run `helm dependency build` (the checkout is
//!   read-only and shared), so a chart with unfetched dependencies fails with Helm's message. Helm version
//!   `v3` (or `3`, or empty) is the only one.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sluice_crds::application::ApplicationSourceHelm;

use crate::directory::RenderError;
use crate::render::{
    BuildEnv, Located, RenderContext, ToolRun, Tools, blocking, invalid, io_error, join_inside, parse_output,
    run_tool,
};

/// The URL schemes a value file may use (Argo CD's default `helm.valuesFileSchemes`).
const VALUE_FILE_SCHEMES: [&str; 2] = ["https", "http"];
/// The name of the inline values file in the render's private directory.
const INLINE_VALUES_FILE: &str = "inline-values.yaml";

/// One `helm template` invocation, as upstream's `TemplateOpts`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TemplateOptions {
    /// `--name-template`.
    pub release_name: String,
    /// `--namespace` (left out when empty).
    pub namespace: String,
    /// `--kube-version` (left out when empty).
    pub kube_version: String,
    /// `--api-versions`, one flag each.
    pub api_versions: Vec<String>,
    /// `--set name=value`.
    pub set: BTreeMap<String, String>,
    /// `--set-string name=value`.
    pub set_string: BTreeMap<String, String>,
    /// `--set-file name=path`.
    pub set_file: BTreeMap<String, String>,
    /// `--values`, the value files (paths or URLs) in order.
    pub values: Vec<String>,
    /// `--values` after the value files: the inline values file.
    pub inline_values: Option<String>,
    /// No `--include-crds`.
    pub skip_crds: bool,
    /// `--skip-schema-validation`.
    pub skip_schema_validation: bool,
    /// `--skip-tests`.
    pub skip_tests: bool,
}

/// The arguments of `helm template` for the chart in the working directory, in upstream's order.
pub fn template_args(options: &TemplateOptions) -> Vec<String> {
    let mut args = vec![
        "template".to_owned(),
        ".".to_owned(),
        "--name-template".to_owned(),
        options.release_name.clone(),
    ];
    let mut flag = |name: &str, value: String| {
        args.push(name.to_owned());
        args.push(value);
    };
    if !options.namespace.is_empty() {
        flag("--namespace", options.namespace.clone());
    }
    if !options.kube_version.is_empty() {
        flag("--kube-version", options.kube_version.clone());
    }
    for (name, value) in &options.set {
        flag("--set", format!("{name}={}", set_value(value)));
    }
    for (name, value) in &options.set_string {
        flag("--set-string", format!("{name}={}", set_value(value)));
    }
    for (name, path) in &options.set_file {
        flag("--set-file", format!("{name}={}", set_value(path)));
    }
    for file in options.values.iter().chain(&options.inline_values) {
        flag("--values", file.clone());
    }
    for version in &options.api_versions {
        flag("--api-versions", version.clone());
    }
    let switches = [
        (!options.skip_crds, "--include-crds"),
        (options.skip_schema_validation, "--skip-schema-validation"),
        (options.skip_tests, "--skip-tests"),
    ];
    args.extend(
        switches
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, switch)| (*switch).to_owned()),
    );
    args
}

/// A `--set` value as upstream's `cleanSetParameters` passes it: every `,` not already escaped is escaped,
/// unless the value is a `{…}` list.
pub fn set_value(value: &str) -> String {
    if value.starts_with('{') && value.ends_with('}') {
        return value.to_owned();
    }
    let mut out = String::with_capacity(value.len());
    let mut previous = None;
    for c in value.chars() {
        if c == ',' && previous != Some('\\') {
            out.push_str("\\,");
        } else {
            out.push(c);
        }
        previous = Some(c);
    }
    out
}

/// Renders the chart at the located app directory with the Application's Helm options.
pub(crate) async fn template(
    tools: &Tools,
    located: &Located,
    options: Option<&ApplicationSourceHelm>,
    ctx: &RenderContext,
    env: &BuildEnv,
) -> Result<Vec<Value>, RenderError> {
    let helm = options.cloned().unwrap_or_default();
    check_version(&helm)?;
    let scratch = tempfile::Builder::new()
        .prefix("sluice-helm-")
        .tempdir()
        .map_err(|e| io_error(Path::new("$TMPDIR"), &e))?;
    let scratch_dir = fs::canonicalize(scratch.path()).map_err(|e| io_error(scratch.path(), &e))?;
    let inline = match inline_values(&helm)? {
        Some(bytes) => {
            let path = scratch_dir.join(INLINE_VALUES_FILE);
            tokio::fs::write(&path, bytes)
                .await
                .map_err(|e| io_error(&path, &e))?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let options = {
        let (located, ctx, env) = (located.clone(), ctx.clone(), env.clone());
        blocking(move || template_options(&located, &helm, &ctx, &env, inline)).await?
    };
    let run = ToolRun {
        tool: "helm template",
        program: &tools.helm,
        args: template_args(&options),
        dir: &located.app_dir,
        env,
        redact: vec![(located.root.clone(), "."), (scratch_dir, "<tmp>")],
    };
    let output = run_tool(run, tools.timeout).await?;
    parse_output("helm template", &output)
}

/// Upstream's `NewCmd`: Helm 3 only.
fn check_version(helm: &ApplicationSourceHelm) -> Result<(), RenderError> {
    match helm.version.as_deref().unwrap_or_default() {
        "" | "3" | "v3" => Ok(()),
        other => Err(invalid(format!("helm chart version '{other}' is not supported"))),
    }
}

/// The inline values file's content: `valuesObject` (as JSON, which is YAML) when set, else `values`.
fn inline_values(helm: &ApplicationSourceHelm) -> Result<Option<Vec<u8>>, RenderError> {
    if let Some(object) = helm.values_object.as_ref().filter(|v| !v.is_null()) {
        let bytes =
            serde_json::to_vec(object).map_err(|e| invalid(format!("spec.source.helm.valuesObject: {e}")))?;
        return Ok(Some(bytes));
    }
    Ok(helm
        .values
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(|v| v.as_bytes().to_vec()))
}

/// The invocation for the Application's options, value files and file parameters resolved in the
/// repository.
fn template_options(
    located: &Located,
    helm: &ApplicationSourceHelm,
    ctx: &RenderContext,
    env: &BuildEnv,
    inline_values: Option<String>,
) -> Result<TemplateOptions, RenderError> {
    let pick = |own: &Option<String>, fallback: &str| {
        own.as_deref()
            .filter(|v| !v.is_empty())
            .unwrap_or(fallback)
            .to_owned()
    };
    let kube_version = pick(
        &helm.kube_version,
        ctx.kube_version.as_deref().unwrap_or_default(),
    );
    let api_versions = match helm.api_versions.as_deref() {
        Some(own) if !own.is_empty() => own.to_vec(),
        _ => ctx.api_versions.clone(),
    };
    let mut options = TemplateOptions {
        release_name: pick(&helm.release_name, &ctx.app_name),
        namespace: pick(&helm.namespace, &ctx.namespace),
        kube_version: kube_version.replace('+', ""),
        api_versions,
        inline_values,
        skip_crds: helm.skip_crds == Some(true),
        skip_schema_validation: helm.skip_schema_validation == Some(true),
        skip_tests: helm.skip_tests == Some(true),
        ..TemplateOptions::default()
    };
    let ignore_missing = helm.ignore_missing_value_files == Some(true);
    for raw in helm.value_files.iter().flatten() {
        match resolve_value_file(&located.root, &located.app_dir, &env.subst(raw))? {
            ValueFile::Remote(url) => options.values.push(url),
            ValueFile::Local(path) if ignore_missing && !path.exists() => {}
            ValueFile::Local(path) => options.values.push(path.display().to_string()),
        }
    }
    for parameter in helm.parameters.iter().flatten() {
        let name = parameter.name.clone().unwrap_or_default();
        let value = env.subst(parameter.value.as_deref().unwrap_or_default());
        match parameter.force_string {
            Some(true) => options.set_string.insert(name, value),
            _ => options.set.insert(name, value),
        };
    }
    for parameter in helm.file_parameters.iter().flatten() {
        let raw = env.subst(parameter.path.as_deref().unwrap_or_default());
        let path = match resolve_value_file(&located.root, &located.app_dir, &raw)? {
            ValueFile::Remote(url) => url,
            ValueFile::Local(path) => path.display().to_string(),
        };
        options
            .set_file
            .insert(parameter.name.clone().unwrap_or_default(), path);
    }
    Ok(options)
}

/// Where a value file (or file parameter) is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum ValueFile {
    /// An allowed URL, passed to Helm as written.
    Remote(String),
    /// A path inside the repository (symlinks resolved when it exists).
    Local(PathBuf),
}

/// Resolves a value file path against the chart directory `app_dir` (or the root `root`, for a path starting
/// with `/`), refusing any that leaves the repository, as upstream's `ResolveValueFilePathOrUrl`.
fn resolve_value_file(root: &Path, app_dir: &Path, raw: &str) -> Result<ValueFile, RenderError> {
    if let Some(scheme) = url_scheme(raw) {
        if VALUE_FILE_SCHEMES.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
            return Ok(ValueFile::Remote(raw.to_owned()));
        }
        return Err(invalid(format!(
            "the URL scheme '{scheme}' is not allowed (value file {raw:?})"
        )));
    }
    let outside = || RenderError::OutsideRepository { path: raw.to_owned() };
    let lexical = match raw.strip_prefix('/') {
        Some(from_root) => join_inside(root, root, from_root.trim_start_matches('/')),
        None => join_inside(root, app_dir, raw),
    }
    .ok_or_else(outside)?;
    let real = match fs::canonicalize(&lexical) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => lexical,
        Err(e) => return Err(io_error(Path::new(raw), &e)),
    };
    if !real.starts_with(root) {
        return Err(outside());
    }
    if real == root {
        return Err(invalid(format!(
            "value file {raw:?} resolves to the repository root"
        )));
    }
    Ok(ValueFile::Local(real))
}

/// The scheme of `raw` when it parses as an absolute URL (Go's `url.Parse`: letters, then letters, digits,
/// `+`, `-` or `.`, up to a `:`).
fn url_scheme(raw: &str) -> Option<&str> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return Some(&raw[..i]),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::render::test_support::{ctx, snapshot, source, tools, write};
    use crate::render::{SourceType, render};

    #[test]
    fn arguments_in_upstream_s_order() {
        let options = TemplateOptions {
            release_name: "web".into(),
            namespace: "prod".into(),
            kube_version: "v1.36.0".into(),
            api_versions: vec!["monitoring.coreos.com/v1/ServiceMonitor".into()],
            set: [("b".into(), "1,2".into()), ("a".into(), "{x,y}".into())].into(),
            set_string: [("flag".into(), "true".into())].into(),
            set_file: [("cert".into(), "/r/cert.pem".into())].into(),
            values: vec![
                "/r/chart/values-prod.yaml".into(),
                "https://example.com/v.yaml".into(),
            ],
            inline_values: Some("/tmp/x/inline-values.yaml".into()),
            skip_crds: false,
            skip_schema_validation: true,
            skip_tests: true,
        };
        assert_eq!(
            template_args(&options),
            [
                "template",
                ".",
                "--name-template",
                "web",
                "--namespace",
                "prod",
                "--kube-version",
                "v1.36.0",
                "--set",
                "a={x,y}",
                "--set",
                "b=1\\,2",
                "--set-string",
                "flag=true",
                "--set-file",
                "cert=/r/cert.pem",
                "--values",
                "/r/chart/values-prod.yaml",
                "--values",
                "https://example.com/v.yaml",
                "--values",
                "/tmp/x/inline-values.yaml",
                "--api-versions",
                "monitoring.coreos.com/v1/ServiceMonitor",
                "--include-crds",
                "--skip-schema-validation",
                "--skip-tests",
            ]
        );
        let minimal = TemplateOptions {
            release_name: "r".into(),
            skip_crds: true,
            ..TemplateOptions::default()
        };
        assert_eq!(template_args(&minimal), ["template", ".", "--name-template", "r"]);
    }

    #[test]
    fn set_values_escape_commas_as_upstream() {
        assert_eq!(set_value("a,b"), "a\\,b");
        assert_eq!(set_value("a\\,b"), "a\\,b");
        assert_eq!(set_value("{a,b}"), "{a,b}");
        assert_eq!(set_value("plain"), "plain");
    }

    #[test]
    fn options_come_from_the_source_then_the_application() {
        let repo = tempfile::tempdir().expect("tempdir");
        write(repo.path(), "chart/Chart.yaml", "name: c\n");
        let root = fs::canonicalize(repo.path()).expect("canonical");
        let located = Located {
            app_dir: root.join("chart"),
            root,
        };
        let ctx = RenderContext {
            kube_version: Some("1.36.1".into()),
            api_versions: vec!["cluster/v1".into()],
            ..ctx()
        };
        let env = BuildEnv::default();
        let defaults =
            template_options(&located, &ApplicationSourceHelm::default(), &ctx, &env, None).expect("options");
        assert_eq!(
            (defaults.release_name.as_str(), defaults.namespace.as_str()),
            ("shop", "prod")
        );
        assert_eq!(defaults.kube_version, "1.36.1");
        assert_eq!(defaults.api_versions, ["cluster/v1"]);
        let own: ApplicationSourceHelm = serde_json::from_value(json!({
            "releaseName": "r", "namespace": "n", "kubeVersion": "1.30.2+k3s1", "apiVersions": ["own/v1"],
            "parameters": [{"name": "a", "value": "1"}, {"name": "a", "value": "2"},
                           {"name": "b", "value": "x", "forceString": true}]
        }))
        .expect("helm options");
        let own = template_options(&located, &own, &ctx, &env, None).expect("options");
        assert_eq!((own.release_name.as_str(), own.namespace.as_str()), ("r", "n"));
        assert_eq!(own.kube_version, "1.30.2k3s1", "upstream drops the `+`");
        assert_eq!(
            own.api_versions,
            ["own/v1"],
            "the source's API versions replace the cluster's"
        );
        assert_eq!(own.set, BTreeMap::from([("a".into(), "2".into())]));
        assert_eq!(own.set_string, BTreeMap::from([("b".into(), "x".into())]));
    }

    #[test]
    fn value_file_paths_stay_in_the_repository() {
        let repo = tempfile::tempdir().expect("tempdir");
        write(repo.path(), "chart/values.yaml", "a: 1\n");
        write(repo.path(), "common/values.yaml", "a: 2\n");
        let root = fs::canonicalize(repo.path()).expect("canonical");
        let chart = root.join("chart");
        let local = |raw: &str| resolve_value_file(&root, &chart, raw);
        assert_eq!(
            local("values.yaml"),
            Ok(ValueFile::Local(chart.join("values.yaml")))
        );
        assert_eq!(
            local("../common/values.yaml"),
            Ok(ValueFile::Local(root.join("common/values.yaml")))
        );
        assert_eq!(
            local("/common/values.yaml"),
            Ok(ValueFile::Local(root.join("common/values.yaml"))),
            "an absolute path is relative to the repository root, as upstream"
        );
        assert_eq!(
            local("missing.yaml"),
            Ok(ValueFile::Local(chart.join("missing.yaml")))
        );
        for outside in [
            "../../etc/passwd",
            "../../../x.yaml",
            "../chart/../../y.yaml",
            "/../etc/passwd",
        ] {
            assert_eq!(
                local(outside),
                Err(RenderError::OutsideRepository { path: outside.into() }),
                "{outside}"
            );
        }
        assert_eq!(
            local("https://example.com/values.yaml"),
            Ok(ValueFile::Remote("https://example.com/values.yaml".into()))
        );
        assert_eq!(
            local("HTTP://example.com/v.yaml"),
            Ok(ValueFile::Remote("HTTP://example.com/v.yaml".into()))
        );
        assert!(matches!(
            local("file:///etc/passwd"),
            Err(RenderError::InvalidSource { .. })
        ));
        assert!(
            matches!(local(".."), Err(RenderError::InvalidSource { .. })),
            "the root itself"
        );
        assert_eq!(url_scheme("dir/a:b.yaml"), None);
        assert_eq!(url_scheme(":x"), None);
        assert_eq!(url_scheme("s3+x://b/k"), Some("s3+x"));
    }

    #[cfg(unix)]
    #[test]
    fn a_value_file_symlinked_outside_is_refused() {
        let outside = tempfile::tempdir().expect("tempdir");
        write(outside.path(), "secret.yaml", "a: 1\n");
        let repo = tempfile::tempdir().expect("tempdir");
        write(
            repo.path(),
            "chart/Chart.yaml",
            "apiVersion: v2\nname: c\nversion: 0.1.0\n",
        );
        let link = repo.path().join("chart/leak.yaml");
        std::os::unix::fs::symlink(outside.path().join("secret.yaml"), link).expect("symlink");
        let root = fs::canonicalize(repo.path()).expect("canonical");
        assert_eq!(
            resolve_value_file(&root, &root.join("chart"), "leak.yaml"),
            Err(RenderError::OutsideRepository {
                path: "leak.yaml".into()
            })
        );
    }

    const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n  \
        namespace: {{ .Release.Namespace }}\ndata:\n  color: {{ .Values.color | quote }}\n  \
        size: {{ .Values.size | quote }}\n  sizeKind: {{ .Values.size | kindOf | quote }}\n  \
        flag: {{ .Values.flag | kindOf | quote }}\n  shape: {{ .Values.shape | quote }}\n  \
        list: {{ .Values.list | quote }}\n  cert: {{ .Values.cert | default \"\" | quote }}\n  \
        kube: {{ .Capabilities.KubeVersion.Version | quote }}\n  \
        monitoring: {{ .Capabilities.APIVersions.Has \"monitoring.coreos.com/v1\" | quote }}\n";

    fn chart_repo() -> tempfile::TempDir {
        let repo = tempfile::tempdir().expect("tempdir");
        write(
            repo.path(),
            "chart/Chart.yaml",
            "apiVersion: v2\nname: shop\nversion: 0.1.0\n",
        );
        write(
            repo.path(),
            "chart/values.yaml",
            "color: red\nsize: 1\nflag: plain\nshape: round\nlist: none\n",
        );
        write(repo.path(), "chart/values-prod.yaml", "size: 2\nshape: square\n");
        write(repo.path(), "chart/values-late.yaml", "shape: triangle\n");
        write(repo.path(), "chart/cert.pem", "CERT\n");
        write(repo.path(), "chart/templates/cm.yaml", CONFIG_MAP);
        write(
            repo.path(),
            "chart/templates/tests/test.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {{ .Release.Name }}-test\n  annotations:\n    \
             helm.sh/hook: test\nspec:\n  containers: []\n",
        );
        write(
            repo.path(),
            "chart/crds/crd.yaml",
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  \
             name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  \
             scope: Namespaced\n  versions: []\n",
        );
        write(repo.path(), "shared/values.yaml", "color: from-shared\n");
        repo
    }

    fn config_map(objects: &[Value]) -> &Value {
        objects
            .iter()
            .find(|o| o["kind"] == "ConfigMap")
            .expect("a ConfigMap")
    }

    fn has_kind(objects: &[Value], kind: &str) -> bool {
        objects.iter().any(|o| o["kind"] == kind)
    }

    #[tokio::test]
    async fn a_chart_with_values_in_upstream_s_precedence() {
        let repo = chart_repo();
        let before = snapshot(repo.path());
        let helm = json!({"helm": {
            "releaseName": "web",
            "valueFiles": ["values-prod.yaml", "/shared/values.yaml", "values-late.yaml"],
            "values": "color: blue\nshape: hexagon\n",
            "parameters": [{"name": "flag", "value": "true", "forceString": true},
                           {"name": "size", "value": "7"}, {"name": "list", "value": "a,b"},
                           {"name": "list", "value": "${ARGOCD_APP_NAME},c"}],
            "fileParameters": [{"name": "cert", "path": "cert.pem"}],
            "kubeVersion": "1.31.2", "apiVersions": ["monitoring.coreos.com/v1"]
        }});
        let out = render(&tools(), repo.path(), &source("chart", helm), &ctx())
            .await
            .expect("render");
        assert_eq!(out.source_type, SourceType::Helm);
        let cm = config_map(&out.objects);
        assert_eq!(cm["metadata"]["name"], "web-cfg");
        assert_eq!(cm["metadata"]["namespace"], "prod", "the destination namespace");
        assert_eq!(cm["data"]["color"], "blue", "values beat the value files");
        assert_eq!(cm["data"]["shape"], "hexagon", "values beat the value files");
        assert_eq!(cm["data"]["size"], "7", "parameters beat everything");
        assert_eq!(cm["data"]["sizeKind"], "int64");
        assert_eq!(cm["data"]["flag"], "string", "forceString");
        assert_eq!(
            cm["data"]["list"], "shop,c",
            "the last parameter of a name, commas kept"
        );
        assert_eq!(cm["data"]["cert"], "CERT\n");
        assert_eq!(cm["data"]["kube"], "v1.31.2");
        assert_eq!(cm["data"]["monitoring"], "true");
        assert!(
            has_kind(&out.objects, "CustomResourceDefinition"),
            "CRDs are included"
        );
        assert!(has_kind(&out.objects, "Pod"), "tests are rendered unless skipped");
        assert_eq!(
            snapshot(repo.path()),
            before,
            "the shared checkout is not modified"
        );
    }

    #[tokio::test]
    async fn value_files_apply_in_order_and_values_object_beats_values() {
        let repo = chart_repo();
        let files = json!({"helm": {"valueFiles": ["values-prod.yaml", "values-late.yaml"],
                                    "namespace": "other"}});
        let out = render(&tools(), repo.path(), &source("chart", files), &ctx())
            .await
            .expect("render");
        let cm = config_map(&out.objects);
        assert_eq!(
            cm["metadata"]["name"], "shop-cfg",
            "the app name is the default release"
        );
        assert_eq!(cm["metadata"]["namespace"], "other", "helm.namespace wins");
        assert_eq!(cm["data"]["shape"], "triangle", "a later value file wins");
        assert_eq!(cm["data"]["size"], "2");
        assert_eq!(cm["data"]["color"], "red", "the chart's values.yaml below all");
        let object = json!({"helm": {"values": "color: blue\n", "valuesObject": {"color": "green", "size": 3},
                                     "skipCrds": true, "skipTests": true}});
        let out = render(&tools(), repo.path(), &source("chart", object), &ctx())
            .await
            .expect("render");
        let cm = config_map(&out.objects);
        assert_eq!(cm["data"]["color"], "green");
        assert_eq!(cm["data"]["size"], "3");
        assert!(!has_kind(&out.objects, "CustomResourceDefinition"), "skipCrds");
        assert!(!has_kind(&out.objects, "Pod"), "skipTests");
    }

    #[tokio::test]
    async fn a_value_file_outside_the_repository_is_refused() {
        let repo = chart_repo();
        for bad in ["../../outside.yaml", "../chart/../../x.yaml"] {
            let helm = json!({"helm": {"valueFiles": [bad]}});
            let err = render(&tools(), repo.path(), &source("chart", helm), &ctx())
                .await
                .expect_err("outside");
            assert_eq!(err, RenderError::OutsideRepository { path: bad.into() });
        }
        let file_parameter =
            json!({"helm": {"fileParameters": [{"name": "x", "path": "../../../etc/passwd"}]}});
        let err = render(&tools(), repo.path(), &source("chart", file_parameter), &ctx())
            .await
            .expect_err("outside");
        assert!(matches!(err, RenderError::OutsideRepository { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_missing_value_file_fails_unless_ignored() {
        let repo = chart_repo();
        let missing = json!({"helm": {"valueFiles": ["nope.yaml"]}});
        let err = render(&tools(), repo.path(), &source("chart", missing), &ctx())
            .await
            .expect_err("missing");
        let RenderError::Tool { tool, message } = &err else {
            panic!("not helm's error: {err}");
        };
        assert_eq!(tool, "helm template");
        assert!(
            message.contains("./chart/nope.yaml") && message.contains("no such file"),
            "{message}"
        );
        let ignored = json!({"helm": {"valueFiles": ["nope.yaml", "values-prod.yaml"],
                                      "ignoreMissingValueFiles": true}});
        let out = render(&tools(), repo.path(), &source("chart", ignored), &ctx())
            .await
            .expect("render");
        assert_eq!(config_map(&out.objects)["data"]["size"], "2");
    }

    #[tokio::test]
    async fn a_failing_chart_reports_helm_s_message() {
        let repo = chart_repo();
        write(
            repo.path(),
            "chart/templates/bad.yaml",
            "{{ .Values.nothing.here }}\n",
        );
        let err = render(&tools(), repo.path(), &source("chart", json!({})), &ctx())
            .await
            .expect_err("broken chart");
        let RenderError::Tool { tool, message } = &err else {
            panic!("not helm's error: {err}");
        };
        assert_eq!(tool, "helm template");
        assert!(
            message.contains("bad.yaml") && message.contains("nil pointer"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn vendored_dependencies_render_and_unfetched_ones_fail_with_helm_s_message() {
        let repo = chart_repo();
        write(
            repo.path(),
            "chart/Chart.yaml",
            "apiVersion: v2\nname: shop\nversion: 0.1.0\ndependencies:\n- name: sub\n  version: 0.1.0\n  \
             repository: https://charts.example.invalid\n",
        );
        write(
            repo.path(),
            "chart/charts/sub/Chart.yaml",
            "apiVersion: v2\nname: sub\nversion: 0.1.0\n",
        );
        write(
            repo.path(),
            "chart/charts/sub/templates/svc.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}-sub\n",
        );
        let before = snapshot(repo.path());
        let out = render(&tools(), repo.path(), &source("chart", json!({})), &ctx())
            .await
            .expect("render");
        assert!(has_kind(&out.objects, "Service") && has_kind(&out.objects, "ConfigMap"));
        assert_eq!(
            snapshot(repo.path()),
            before,
            "the shared checkout is not modified"
        );

        fs::remove_dir_all(repo.path().join("chart/charts")).expect("remove");
        let err = render(&tools(), repo.path(), &source("chart", json!({})), &ctx())
            .await
            .expect_err("unfetched");
        assert!(
            err.to_string().contains("missing in charts/ directory: sub"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn unsupported_helm_options_are_refused() {
        let repo = chart_repo();
        let v2 = json!({"helm": {"version": "v2"}});
        let err = render(&tools(), repo.path(), &source("chart", v2), &ctx())
            .await
            .expect_err("v2");
        assert!(matches!(err, RenderError::InvalidSource { .. }), "{err}");
        let scheme = json!({"helm": {"valueFiles": ["s3://bucket/values.yaml"]}});
        let err = render(&tools(), repo.path(), &source("chart", scheme), &ctx())
            .await
            .expect_err("scheme");
        assert!(err.to_string().contains("'s3' is not allowed"), "{err}");
    }
}
