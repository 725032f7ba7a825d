use k8s_openapi::ByteString;

use super::*;

fn secret(name: &str, kind: &str, data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.metadata.resource_version = Some("7".into());
    s.metadata.labels = Some(BTreeMap::from([
        (LABEL_SECRET_TYPE.to_string(), kind.to_string()),
        ("env".to_string(), "prod".to_string()),
    ]));
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    s
}

fn cluster(name: &str, server: &str) -> ClusterSecret {
    ClusterSecret::from_secret(&secret(
        &format!("cluster-{name}"),
        "cluster",
        &[("name", name), ("server", server)],
    ))
    .unwrap()
    .unwrap()
}

fn dst(server: Option<&str>, name: Option<&str>) -> ApplicationDestination {
    ApplicationDestination {
        server: server.map(String::from),
        name: name.map(String::from),
        namespace: Some("apps".into()),
    }
}

#[test]
fn a_cluster_secret_is_read_with_its_config() {
    let config = r#"{"bearerToken":"s3cr3t-token","tlsClientConfig":{"insecure":false,"caData":"Q0E=","serverName":"api"}}"#;
    let s = secret(
        "prod",
        "cluster",
        &[
            ("name", "prod"),
            ("server", "https://10.0.0.1:6443/"),
            ("config", config),
            ("namespaces", "a, b,"),
            ("clusterResources", "true"),
            ("project", "team"),
        ],
    );
    let c = ClusterSecret::from_secret(&s).unwrap().unwrap();
    assert_eq!(c.server, "https://10.0.0.1:6443");
    assert_eq!(c.name, "prod");
    assert_eq!(c.resource_version, "7");
    assert_eq!(c.config.bearer_token.as_deref(), Some("s3cr3t-token"));
    assert_eq!(c.config.tls_client_config.ca_data.as_deref(), Some("Q0E="));
    assert_eq!(c.namespaces, vec!["a", "b"]);
    assert!(c.cluster_resources);
    assert_eq!(c.project.as_deref(), Some("team"));
    assert_eq!(c.labels.get("env").map(String::as_str), Some("prod"));
    assert_eq!(c.config.secret_values(), vec!["s3cr3t-token"]);
    let shown = format!("{c:?}");
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(shown.contains("<set>"), "{shown}");
}

#[test]
fn other_secrets_are_not_clusters_and_broken_ones_say_why_without_credentials() {
    assert!(ClusterSecret::from_secret(&secret("r", "repository", &[("url", "x")])).is_none());
    let no_server = secret("c1", "cluster", &[("name", "x")]);
    let bad_json = secret(
        "c2",
        "cluster",
        &[
            ("server", "https://x"),
            ("config", "{\"bearerToken\": \"hunter2\","),
        ],
    );
    let ok = secret("c3", "cluster", &[("server", "https://y")]);
    let (clusters, broken) = cluster_secrets(&[no_server, bad_json, ok]);
    assert_eq!(clusters.len(), 1);
    assert_eq!(
        clusters[0].name, "https://y",
        "the server names a cluster without a name"
    );
    assert_eq!(broken[0], "cluster Secret c1 has no server");
    assert!(
        broken[1].starts_with("cluster Secret c2: config is not valid JSON"),
        "{}",
        broken[1]
    );
    assert!(!broken.iter().any(|b| b.contains("hunter2")));
}

#[test]
fn destinations_resolve_as_argo_cd_resolves_them() {
    let clusters = vec![
        cluster("prod", "https://p:6443"),
        cluster("stage", "https://s:6443"),
    ];
    let ok = |d| resolve(&d, &clusters).unwrap();
    let local = ok(dst(Some("https://kubernetes.default.svc/"), None));
    assert_eq!(local.target, Target::InCluster);
    assert_eq!(local.name, "in-cluster");
    assert_eq!(ok(dst(None, Some("in-cluster"))).server, IN_CLUSTER_SERVER);
    let prod = ok(dst(None, Some("prod")));
    assert_eq!(prod.server, "https://p:6443");
    assert!(matches!(prod.target, Target::Remote(ref c) if c.name == "prod"));
    let stage = ok(dst(Some("https://s:6443/"), None));
    assert_eq!(stage.name, "stage");
    let err = |d| resolve(&d, &clusters).unwrap_err();
    assert_eq!(
        err(dst(None, Some("qa"))),
        "unable to find destination server: there are no clusters with this name: qa"
    );
    assert_eq!(
        err(dst(Some("https://q:6443"), None)),
        "unable to find destination server: there are no clusters with this URL: https://q:6443"
    );
    assert_eq!(
        err(dst(Some("https://p:6443"), Some("prod"))),
        "application destination can't have both name and server defined: prod https://p:6443"
    );
    assert_eq!(err(dst(None, None)), "Destination server missing from app spec");
    let twins = vec![cluster("dup", "https://a"), cluster("dup", "https://b")];
    assert_eq!(
        resolve(&dst(None, Some("dup")), &twins).unwrap_err(),
        "unable to find destination server: there are 2 clusters with the same name: [https://a https://b]"
    );
}

#[test]
fn a_secret_for_the_in_cluster_url_renames_it_and_keeps_the_own_credentials() {
    let clusters = vec![cluster("hub", IN_CLUSTER_SERVER)];
    let hub = resolve(&dst(None, Some("hub")), &clusters).unwrap();
    assert_eq!(hub.target, Target::InCluster);
    assert!(resolve(&dst(None, Some("in-cluster")), &clusters).is_err());
    let known = known_clusters(&clusters);
    assert_eq!(known.len(), 1);
    assert!(known[0].declared);
    let implicit = known_clusters(&[]);
    assert_eq!(implicit[0].name, "in-cluster");
    assert!(!implicit[0].declared);
}

#[test]
fn the_kubeconfig_carries_token_or_client_certificate() {
    let mut c = cluster("prod", "https://p:6443");
    c.config.bearer_token = Some("tok".into());
    c.config.tls_client_config.ca_data = Some("Q0E=".into());
    let kc = kubeconfig(&c);
    assert_eq!(kc["clusters"][0]["cluster"]["server"], "https://p:6443");
    assert_eq!(kc["clusters"][0]["cluster"]["certificate-authority-data"], "Q0E=");
    assert_eq!(kc["users"][0]["user"]["token"], "tok");
    assert!(kc["users"][0]["user"].get("client-key-data").is_none());
    let mut t = cluster("tls", "https://t:6443");
    t.config.tls_client_config.cert_data = Some("Y2VydA==".into());
    t.config.tls_client_config.key_data = Some("a2V5".into());
    t.config.tls_client_config.insecure = true;
    let kc = kubeconfig(&t);
    assert_eq!(kc["users"][0]["user"]["client-certificate-data"], "Y2VydA==");
    assert_eq!(kc["users"][0]["user"]["client-key-data"], "a2V5");
    assert_eq!(kc["clusters"][0]["cluster"]["insecure-skip-tls-verify"], true);
}

#[test]
fn known_clusters_carry_the_secrets_project() {
    let scoped = ClusterSecret::from_secret(&secret(
        "cluster-team",
        "cluster",
        &[
            ("name", "team"),
            ("server", "https://team:6443"),
            ("project", "payments"),
        ],
    ))
    .unwrap()
    .unwrap();
    let known = known_clusters(&[scoped, cluster("open", "https://open:6443")]);
    let projects: Vec<(&str, &str)> = known
        .iter()
        .map(|c| (c.name.as_str(), c.project.as_str()))
        .collect();
    assert_eq!(projects, [("in-cluster", ""), ("team", "payments"), ("open", "")]);
}
