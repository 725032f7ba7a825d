use std::fs;

use serde_json::json;

use super::*;
use crate::appset::tests::{Braces, set};
use crate::appset::{Inputs, Options};

const REPO: &str = "https://example.com/apps.git";

/// A checkout with directories, dot-directories, a symlinked directory and config files.
fn checkout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in [
        "apps/guestbook/overlays",
        "apps/Helm_Guestbook",
        "apps/skipped",
        ".github/workflows",
        "apps/.hidden/inner",
        ".git/objects",
        "cluster-config/engineering/dev",
        "cluster-config/engineering/prod",
        "cluster-config/skip",
    ] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    let write = |p: &str, s: &str| fs::write(root.join(p), s).unwrap();
    write(
        "cluster-config/engineering/dev/config.json",
        r#"{"cluster": {"name": "dev", "address": "https://1.2.3.4", "port": 6443}, "tags": ["a", "b"]}"#,
    );
    write(
        "cluster-config/engineering/prod/config.yaml",
        "- cluster: {name: prod-a}\n- cluster: {name: prod-b}\n",
    );
    write(
        "cluster-config/skip/config.json",
        r#"{"cluster": {"name": "skip"}}"#,
    );
    write("config.json", "");
    write(".git/objects/config.json", r#"{"never": "read"}"#);
    std::os::unix::fs::symlink(root.join("apps/guestbook"), root.join("apps/linked")).unwrap();
    dir
}

fn run(dir: &Path, generator: serde_json::Value, go: bool) -> Result<Vec<Params>, String> {
    let inputs = Inputs {
        clusters: vec![],
        checkouts: BTreeMap::from([((REPO.to_string(), "HEAD".to_string()), dir.to_path_buf())]),
    };
    let ctx = Context {
        inputs: &inputs,
        interp: &Braces,
        options: Options {
            go_template: go,
            apply_nested_selectors: false,
        },
    };
    let mut spec = json!({"repoURL": REPO, "revision": "HEAD"});
    spec.as_object_mut()
        .unwrap()
        .extend(generator.as_object().unwrap().clone());
    params(&serde_json::from_value(spec).unwrap(), &ctx)
}

use std::collections::BTreeMap;

#[test]
fn the_walk_lists_real_directories_in_lexical_pre_order() {
    let repo = checkout();
    assert_eq!(
        directories(repo.path()).unwrap(),
        [
            "apps",
            "apps/Helm_Guestbook",
            "apps/guestbook",
            "apps/guestbook/overlays",
            "apps/skipped",
            "cluster-config",
            "cluster-config/engineering",
            "cluster-config/engineering/dev",
            "cluster-config/engineering/prod",
            "cluster-config/skip",
        ],
        "dot-directories are skipped and the symlinked apps/linked is neither listed nor followed"
    );
}

#[test]
fn directories_match_globs_and_exclusions_win() {
    let repo = checkout();
    let cases = [
        (
            json!([{"path": "apps/*"}]),
            vec!["apps/Helm_Guestbook", "apps/guestbook", "apps/skipped"],
        ),
        (
            json!([{"path": "apps/*"}, {"path": "apps/skipped", "exclude": true}]),
            vec!["apps/Helm_Guestbook", "apps/guestbook"],
        ),
        (
            json!([{"path": "apps/skipped", "exclude": true}, {"path": "apps/*"}]),
            vec!["apps/Helm_Guestbook", "apps/guestbook"],
        ),
        (json!([{"path": "*/*/overlays"}]), vec!["apps/guestbook/overlays"]),
        (json!([{"path": "apps/linked"}]), vec![]),
        (json!([{"path": "apps/.hidden"}]), vec![]),
        (json!([{"path": "apps/["}]), vec![]),
    ];
    for (dirs, want) in cases {
        let got = run(repo.path(), json!({"directories": dirs}), false).unwrap();
        let paths: Vec<&str> = got.iter().map(|p| p["path"].as_str().unwrap()).collect();
        assert_eq!(paths, want, "{dirs}");
    }
}

#[test]
fn directory_parameters_are_flat_or_nested_with_an_optional_prefix() {
    let repo = checkout();
    let flat = run(
        repo.path(),
        json!({"directories": [{"path": "apps/Helm_Guestbook"}], "values": {"name": "app-{{path.basename}}"}}),
        false,
    )
    .unwrap();
    assert_eq!(
        flat,
        [set(json!({
            "path": "apps/Helm_Guestbook", "path.basename": "Helm_Guestbook",
            "path.basenameNormalized": "helm-guestbook", "path[0]": "apps", "path[1]": "Helm_Guestbook",
            "values.name": "app-Helm_Guestbook"
        }))]
    );
    let prefixed = run(
        repo.path(),
        json!({"directories": [{"path": "apps/guestbook"}], "pathParamPrefix": "app"}),
        false,
    )
    .unwrap();
    assert_eq!(prefixed[0]["app.path.basename"], "guestbook");
    assert_eq!(prefixed[0]["app.path[1]"], "guestbook");
    let nested = run(
        repo.path(),
        json!({"directories": [{"path": "apps/guestbook"}], "pathParamPrefix": "app", "values": {"b": "{{.app.path.basename}}"}}),
        true,
    )
    .unwrap();
    assert_eq!(
        nested,
        [set(json!({
            "app": {"path": {"path": "apps/guestbook", "basename": "guestbook",
                             "basenameNormalized": "guestbook", "segments": ["apps", "guestbook"]}},
            "values": {"b": "guestbook"}
        }))]
    );
}

#[test]
fn files_become_one_set_per_object_with_path_parameters() {
    let repo = checkout();
    let got = run(
        repo.path(),
        json!({"files": [{"path": "cluster-config/**/config.*"}, {"path": "cluster-config/skip/*", "exclude": true}]}),
        false,
    )
    .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(
        got[0],
        set(json!({
            "cluster.name": "dev", "cluster.address": "https://1.2.3.4", "cluster.port": "6443",
            "tags.0": "a", "tags.1": "b",
            "path": "cluster-config/engineering/dev", "path.basename": "dev", "path.filename": "config.json",
            "path.basenameNormalized": "dev", "path.filenameNormalized": "config.json",
            "path[0]": "cluster-config", "path[1]": "engineering", "path[2]": "dev"
        }))
    );
    assert_eq!(got[1]["cluster.name"], "prod-a");
    assert_eq!(got[2]["cluster.name"], "prod-b");
    assert_eq!(got[2]["path.filename"], "config.yaml");
}

#[test]
fn go_template_file_parameters_keep_the_objects_nested() {
    let repo = checkout();
    let got = run(
        repo.path(),
        json!({"files": [{"path": "cluster-config/engineering/dev/config.json"}]}),
        true,
    )
    .unwrap();
    assert_eq!(
        got,
        [set(json!({
            "cluster": {"name": "dev", "address": "https://1.2.3.4", "port": 6443}, "tags": ["a", "b"],
            "path": {"path": "cluster-config/engineering/dev", "basename": "dev", "filename": "config.json",
                     "basenameNormalized": "dev", "filenameNormalized": "config.json",
                     "segments": ["cluster-config", "engineering", "dev"]}
        }))]
    );
}

#[test]
fn an_empty_file_at_the_root_is_one_set_and_git_internals_are_never_read() {
    let repo = checkout();
    let got = run(repo.path(), json!({"files": [{"path": "*config.json"}]}), false).unwrap();
    let paths: Vec<&str> = got.iter().map(|p| p["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["cluster-config/engineering/dev", "cluster-config/skip", "."]
    );
    assert_eq!(got[2]["path.basename"], ".");
    assert_eq!(got[2]["path[0]"], ".");
}

#[test]
fn a_symlink_out_of_the_repository_is_refused() {
    let repo = checkout();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret.json"), r#"{"password": "hunter2"}"#).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.json"),
        repo.path().join("cluster-config/leak.json"),
    )
    .unwrap();
    let err = run(
        repo.path(),
        json!({"files": [{"path": "cluster-config/*.json"}]}),
        false,
    )
    .unwrap_err();
    assert!(
        err.contains("cluster-config/leak.json") && err.contains("outside the repository"),
        "{err}"
    );
    assert!(!err.contains("hunter2"));
    // A link that stays inside is read.
    std::fs::remove_file(repo.path().join("cluster-config/leak.json")).unwrap();
    std::os::unix::fs::symlink(
        repo.path().join("cluster-config/skip/config.json"),
        repo.path().join("cluster-config/inside.json"),
    )
    .unwrap();
    let got = run(
        repo.path(),
        json!({"files": [{"path": "cluster-config/inside.json"}]}),
        false,
    )
    .unwrap();
    assert_eq!(got[0]["cluster.name"], "skip");
}

#[test]
fn patterns_outside_the_repository_and_bad_files_are_refused() {
    let repo = checkout();
    fs::write(repo.path().join("apps/bad.yaml"), "just a string").unwrap();
    fs::write(repo.path().join("apps/list.yaml"), "- 1\n").unwrap();
    fs::write(repo.path().join("apps/broken.json"), "{").unwrap();
    let cases = [
        (
            json!({"files": [{"path": "../*.json"}]}),
            "outside the repository",
        ),
        (
            json!({"files": [{"path": "apps/../../x"}]}),
            "outside the repository",
        ),
        (
            json!({"files": [{"path": "/etc/passwd"}]}),
            "outside the repository",
        ),
        (
            json!({"files": [{"path": "apps/bad.yaml"}]}),
            "unable to process file 'apps/bad.yaml': unable to parse file: it holds a string",
        ),
        (
            json!({"files": [{"path": "apps/list.yaml"}]}),
            "unable to parse file: a list item is a number",
        ),
        (
            json!({"files": [{"path": "apps/broken.json"}]}),
            "unable to process file 'apps/broken.json': unable to parse file",
        ),
        (
            json!({"files": [{"path": "apps/linked"}]}),
            "unable to read file 'apps/linked'",
        ),
        (json!({"files": []}), "ApplicationSet is empty"),
    ];
    for (spec, want) in cases {
        let err = run(repo.path(), spec.clone(), false).unwrap_err();
        assert!(err.contains(want), "{spec}: {err}");
    }
}
