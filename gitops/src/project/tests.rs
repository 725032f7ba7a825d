use serde_json::json;

use super::*;

fn project(yaml: &str) -> AppProjectSpec {
    serde_yaml::from_str(yaml).expect("project spec")
}

fn app(repo: &str, server: Option<&str>, name: Option<&str>, namespace: &str) -> Application {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "guestbook", "namespace": "argocd"},
        "spec": {
            "project": "team",
            "source": {"repoURL": repo, "path": "."},
            "destination": {"server": server, "name": name, "namespace": namespace},
        }
    }))
    .expect("application")
}

#[test]
fn source_repos_match_normalized_urls_with_globs_and_denials() {
    let cases = [
        ("sourceRepos: ['*']", "https://github.com/argoproj/argo-cd", true),
        (
            "sourceRepos: ['https://github.com/argoproj/test.git']",
            "https://github.com/argoproj/test",
            true,
        ),
        (
            "sourceRepos: ['https://github.com/argoproj/test']",
            "https://GitHub.com/argoproj/test.git/",
            true,
        ),
        (
            "sourceRepos: ['https://github.com/argoproj/test']",
            "https://github.com/argoproj/test2",
            false,
        ),
        (
            "sourceRepos: ['https://github.com/argoproj/*']",
            "https://github.com/argoproj/argo-cd.git",
            true,
        ),
        (
            "sourceRepos: ['https://github.com/argoproj/*']",
            "https://github.com/argoproj/a/b",
            false,
        ),
        (
            "sourceRepos: ['https://github.com/**']",
            "https://github.com/argoproj/a/b",
            true,
        ),
        // A lone deny pattern permits everything else, as upstream's loop does.
        (
            "sourceRepos: ['!https://gitlab.com/*']",
            "https://github.com/x",
            true,
        ),
        (
            "sourceRepos: ['!https://gitlab.com/*']",
            "https://gitlab.com/x",
            false,
        ),
        (
            "sourceRepos: ['*', '!https://gitlab.com/*']",
            "https://gitlab.com/x",
            false,
        ),
        (
            "sourceRepos: ['*', '!https://gitlab.com/*']",
            "https://github.com/x",
            true,
        ),
        ("sourceRepos: []", "https://github.com/x", false),
        ("{}", "https://github.com/x", false),
    ];
    for (spec, url, want) in cases {
        assert_eq!(source_permitted(&project(spec), url), want, "{spec} ~ {url}");
    }
}

#[test]
fn destinations_match_server_or_name_and_namespace_and_denials_win() {
    let dst = |server, name, namespace| Destination {
        server,
        name,
        namespace,
    };
    let local = |ns| dst(IN_CLUSTER_SERVER, IN_CLUSTER_NAME, ns);
    let cases = [
        (
            "destinations: [{server: '*', namespace: '*'}]",
            local("anything"),
            true,
        ),
        (
            "destinations: [{server: 'https://kubernetes.default.svc', namespace: default}]",
            local("default"),
            true,
        ),
        (
            "destinations: [{server: 'https://kubernetes.default.svc', namespace: default}]",
            local("kube-system"),
            false,
        ),
        (
            "destinations: [{server: '*', namespace: 'team-*'}]",
            local("team-a"),
            true,
        ),
        (
            "destinations: [{server: '*', namespace: 'team-*'}]",
            local("other"),
            false,
        ),
        (
            "destinations: [{name: in-cluster, namespace: '*'}]",
            local("x"),
            true,
        ),
        ("destinations: [{name: prod, namespace: '*'}]", local("x"), false),
        (
            "destinations: [{server: '*', namespace: '*'}, {server: '*', namespace: '!kube-system'}]",
            local("kube-system"),
            false,
        ),
        (
            "destinations: [{server: '*', namespace: '*'}, {server: '*', namespace: '!kube-system'}]",
            local("default"),
            true,
        ),
        (
            "destinations: [{server: '*', namespace: '*'}, {server: '!https://kubernetes.default.svc', namespace: '*'}]",
            local("a"),
            false,
        ),
        (
            "destinations: [{server: '*', namespace: '*'}]",
            dst("", "", "a"),
            false,
        ),
        ("{}", local("default"), false),
    ];
    for (spec, d, want) in cases {
        assert_eq!(destination_permitted(&project(spec), d), want, "{spec} ~ {d:?}");
    }
}

#[test]
fn cluster_kinds_are_denied_unless_whitelisted_namespaced_kinds_allowed_unless_left_out() {
    let cases = [
        ("{}", "", "ConfigMap", true, true),
        ("{}", "", "Namespace", false, false),
        (
            "clusterResourceWhitelist: [{group: '*', kind: '*'}]",
            "",
            "Namespace",
            false,
            true,
        ),
        ("clusterResourceWhitelist: []", "", "Namespace", false, false),
        (
            "clusterResourceWhitelist: [{group: rbac.authorization.k8s.io, kind: ClusterRole}]",
            "rbac.authorization.k8s.io",
            "ClusterRole",
            false,
            true,
        ),
        (
            "clusterResourceWhitelist: [{group: rbac.authorization.k8s.io, kind: ClusterRole}]",
            "",
            "Namespace",
            false,
            false,
        ),
        (
            "clusterResourceWhitelist: [{group: '*', kind: '*'}]\nclusterResourceBlacklist: [{group: '', kind: Namespace}]",
            "",
            "Namespace",
            false,
            false,
        ),
        (
            "clusterResourceWhitelist: [{group: '', kind: Namespace, name: 'team-*'}]",
            "",
            "Namespace",
            false,
            true,
        ),
        (
            "clusterResourceWhitelist: [{group: '', kind: Namespace, name: 'other-*'}]",
            "",
            "Namespace",
            false,
            false,
        ),
        (
            "namespaceResourceWhitelist: [{group: '', kind: ConfigMap}]",
            "",
            "ConfigMap",
            true,
            true,
        ),
        (
            "namespaceResourceWhitelist: [{group: '', kind: ConfigMap}]",
            "",
            "Secret",
            true,
            false,
        ),
        ("namespaceResourceWhitelist: []", "", "ConfigMap", true, false),
        (
            "namespaceResourceBlacklist: [{group: '', kind: Secret}]",
            "",
            "Secret",
            true,
            false,
        ),
        (
            "namespaceResourceBlacklist: [{group: '', kind: Secret}]",
            "apps",
            "Deployment",
            true,
            true,
        ),
        (
            "namespaceResourceBlacklist: [{group: '*', kind: '*'}]",
            "apps",
            "Deployment",
            true,
            false,
        ),
    ];
    for (spec, group, kind, namespaced, want) in cases {
        let got = kind_permitted(&project(spec), group, kind, "team-a", namespaced);
        assert_eq!(got, want, "{spec} ~ {group}/{kind} namespaced={namespaced}");
    }
}

#[test]
fn the_default_project_permits_everything() {
    let p = default_project();
    assert!(source_permitted(&p, "https://example.com/any/repo.git"));
    assert!(destination_permitted(
        &p,
        Destination {
            server: "https://other:6443",
            name: "",
            namespace: "x"
        }
    ));
    assert!(kind_permitted(&p, "", "Namespace", "x", false));
    assert!(kind_permitted(&p, "apps", "Deployment", "x", true));
}

#[test]
fn spec_violations_carry_argo_cds_messages() {
    let p =
        project("sourceRepos: ['https://github.com/team/*']\ndestinations: [{server: '*', namespace: team}]");
    assert!(
        spec_violations(
            "team",
            &p,
            &app(
                "https://github.com/team/app",
                Some(IN_CLUSTER_SERVER),
                None,
                "team"
            )
        )
        .is_empty()
    );
    assert!(
        spec_violations(
            "team",
            &p,
            &app("https://github.com/team/app", None, Some("in-cluster"), "team")
        )
        .is_empty()
    );
    assert_eq!(
        spec_violations(
            "team",
            &p,
            &app(
                "https://github.com/other/app",
                Some(IN_CLUSTER_SERVER),
                None,
                "argocd"
            )
        ),
        [
            "application repo https://github.com/other/app is not permitted in project 'team'",
            "application destination server 'https://kubernetes.default.svc' and namespace 'argocd' do not match any of the allowed destinations in project 'team'",
        ]
    );
}

#[test]
fn rendered_objects_are_checked_by_kind_and_namespace() {
    let p = project(
        "destinations: [{server: '*', namespace: team}]\nclusterResourceWhitelist: [{group: '', kind: Namespace}]",
    );
    let cluster = (IN_CLUSTER_SERVER, IN_CLUSTER_NAME);
    let obj = |api: &str, kind: &str, ns: Option<&str>| json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x", "namespace": ns}});
    assert_eq!(
        object_violation("team", &p, &obj("v1", "ConfigMap", Some("team")), true, cluster),
        None
    );
    assert_eq!(
        object_violation("team", &p, &obj("v1", "Namespace", None), false, cluster),
        None
    );
    assert_eq!(
        object_violation(
            "team",
            &p,
            &obj("v1", "ConfigMap", Some("kube-system")),
            true,
            cluster
        )
        .as_deref(),
        Some("namespace kube-system is not permitted in project 'team'")
    );
    assert_eq!(
        object_violation(
            "team",
            &p,
            &obj("rbac.authorization.k8s.io/v1", "ClusterRole", None),
            false,
            cluster
        )
        .as_deref(),
        Some("resource rbac.authorization.k8s.io:ClusterRole is not permitted in project team")
    );
}

#[test]
fn in_cluster_destinations_are_resolved_both_ways() {
    let d = |server: Option<&str>, name: Option<&str>| ApplicationDestination {
        server: server.map(String::from),
        name: name.map(String::from),
        namespace: None,
    };
    let local = (IN_CLUSTER_SERVER.to_string(), IN_CLUSTER_NAME.to_string());
    assert_eq!(resolve_destination(&d(None, Some("in-cluster"))), local);
    assert_eq!(
        resolve_destination(&d(Some("https://kubernetes.default.svc/"), None)),
        local
    );
    assert_eq!(
        resolve_destination(&d(Some("https://x:6443"), None)),
        ("https://x:6443".into(), String::new())
    );
}
