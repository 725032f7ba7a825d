//! The e2e Git server against real git clients (git://, smart HTTP with basic auth, gzip-encoded negotiation,
//! per-repository request counts), then Sluice's own Git source (`GitCache`) against it over every transport.
//! No Kubernetes cluster is needed.

use std::{path::Path, process::Output, sync::Arc, time::Duration};

use anyhow::{Result, ensure};
use sluice_e2e::git_server::{GitServer, Repo, basic_auth, git_command, run_git};
use sluice_gitops::source::{Credentials, GitCache, GitError};

const DEPLOYMENT: &str = "kind: Deployment\nmetadata:\n  name: guestbook\n";

/// A server with repository `apps` holding one commit of `guestbook/deployment.yaml`, and that commit.
async fn server_with_apps() -> Result<(GitServer, Repo, String)> {
    let server = GitServer::start().await?;
    let repo = server.create_repo("apps").await?;
    repo.write("guestbook/deployment.yaml", DEPLOYMENT).await?;
    let sha = repo.commit("add guestbook").await?;
    Ok((server, repo, sha))
}

/// Runs git in `dir` and returns its output whatever its exit status.
async fn git_output(dir: &Path, args: &[&str]) -> Result<Output> {
    Ok(git_command().arg("-C").arg(dir).args(args).output().await?)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `-c http.extraHeader=Authorization: Basic ...` for the server's user.
fn auth_config(server: &GitServer) -> String {
    format!("http.extraHeader=Authorization: {}", server.authorization())
}

fn credentials(server: &GitServer) -> Credentials {
    Credentials {
        username: Some(server.username().to_string()),
        password: Some(server.password().to_string()),
    }
}

#[tokio::test]
async fn a_repository_clones_over_the_git_protocol() -> Result<()> {
    let (server, repo, sha) = server_with_apps().await?;
    let dest = server.scratch("clone")?;
    run_git(&dest, &["clone", "--quiet", &repo.git_url(), "."]).await?;
    let file = std::fs::read_to_string(dest.join("guestbook/deployment.yaml"))?;
    assert_eq!(file, DEPLOYMENT);
    assert_eq!(run_git(&dest, &["rev-parse", "HEAD"]).await?, sha);
    assert_eq!(
        run_git(&dest, &["symbolic-ref", "--short", "HEAD"]).await?,
        "main"
    );
    assert_eq!(
        server.http_requests("apps"),
        0,
        "git:// does not go through the HTTP server"
    );
    Ok(())
}

#[tokio::test]
async fn dropping_the_server_stops_git_daemon_and_removes_its_repositories() -> Result<()> {
    let (server, repo, _) = server_with_apps().await?;
    let pid = server.daemon_pid().expect("git daemon runs");
    assert!(sluice_e2e::process::alive(pid));
    let root = server.root().to_path_buf();
    let port = server.http_port();
    drop(server);
    assert!(root.exists(), "a repository keeps the directory");
    drop(repo);
    assert!(!root.exists());
    for _ in 0..100 {
        if !sluice_e2e::process::alive(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !sluice_e2e::process::alive(pid),
        "git daemon {pid} outlived the server"
    );
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(refused.is_err(), "the HTTP server still accepts connections");
    Ok(())
}

#[tokio::test]
async fn a_repository_clones_over_http_with_the_right_credentials() -> Result<()> {
    let (server, repo, sha) = server_with_apps().await?;
    assert!(
        !repo.http_url().contains('@'),
        "no credentials in {}",
        repo.http_url()
    );

    let by_header = server.scratch("by-header")?;
    let config = auth_config(&server);
    run_git(
        &by_header,
        &["-c", &config, "clone", "--quiet", &repo.http_url(), "."],
    )
    .await?;
    assert_eq!(
        std::fs::read_to_string(by_header.join("guestbook/deployment.yaml"))?,
        DEPLOYMENT
    );
    assert_eq!(run_git(&by_header, &["rev-parse", "HEAD"]).await?, sha);

    let by_url = server.scratch("by-url")?;
    let url = format!(
        "http://{}:{}@127.0.0.1:{}/apps.git",
        server.username(),
        server.password(),
        server.http_port()
    );
    run_git(&by_url, &["clone", "--quiet", &url, "."]).await?;
    assert_eq!(run_git(&by_url, &["rev-parse", "HEAD"]).await?, sha);

    let log = server.http_log();
    assert!(
        log.iter()
            .any(|r| r.path == "info/refs" && r.query == "service=git-upload-pack" && r.status == 200),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|r| r.method == "POST" && r.path == "git-upload-pack" && r.status == 200),
        "{log:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn http_refuses_missing_or_wrong_credentials() -> Result<()> {
    let (server, repo, _) = server_with_apps().await?;
    let dir = server.scratch("clients")?;

    let none = git_output(&dir, &["clone", "--quiet", &repo.http_url(), "none"]).await?;
    assert!(!none.status.success());
    let text = stderr(&none);
    assert!(
        text.contains("could not read Username") || text.contains("Authentication failed"),
        "{text}"
    );

    let wrong_url = format!(
        "http://{}:wrong-password@127.0.0.1:{}/apps.git",
        server.username(),
        server.http_port()
    );
    let wrong = git_output(&dir, &["clone", "--quiet", &wrong_url, "wrong"]).await?;
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("Authentication failed"),
        "{}",
        stderr(&wrong)
    );

    let header = format!(
        "http.extraHeader=Authorization: {}",
        basic_auth(server.username(), "nope")
    );
    let wrong_header = git_output(&dir, &["-c", &header, "clone", &repo.http_url(), "h"]).await?;
    assert!(!wrong_header.status.success());
    assert!(!dir.join("h").join("guestbook").exists());

    let info_refs = format!("{}/info/refs?service=git-upload-pack", repo.http_url());
    let client = reqwest::Client::new();
    let anonymous = client.get(&info_refs).send().await?;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], r#"Basic realm="git""#);
    let bad = client
        .get(&info_refs)
        .basic_auth(server.username(), Some("nope"))
        .send()
        .await?;
    assert_eq!(bad.status(), 401);
    let good = client
        .get(&info_refs)
        .basic_auth(server.username(), Some(server.password()))
        .send()
        .await?;
    assert_eq!(good.status(), 200);
    assert_eq!(
        good.headers()["content-type"],
        "application/x-git-upload-pack-advertisement"
    );

    assert_eq!(
        server.http_requests("apps"),
        1,
        "only the authenticated request counts"
    );
    assert!(server.http_log().iter().filter(|r| r.status == 401).count() >= 5);
    Ok(())
}

#[tokio::test]
async fn a_new_commit_is_visible_on_the_next_fetch() -> Result<()> {
    let (server, repo, first) = server_with_apps().await?;
    let over_git = server.scratch("git")?;
    let over_http = server.scratch("http")?;
    let config = auth_config(&server);
    run_git(&over_git, &["clone", "--quiet", &repo.git_url(), "."]).await?;
    run_git(
        &over_http,
        &["-c", &config, "clone", "--quiet", &repo.http_url(), "."],
    )
    .await?;

    repo.write(
        "guestbook/deployment.yaml",
        "kind: Deployment\nspec: {replicas: 3}\n",
    )
    .await?;
    repo.write("guestbook/service.yaml", "kind: Service\n").await?;
    let second = repo.commit("scale guestbook").await?;
    assert_ne!(first, second);
    assert_eq!(repo.head().await?, second);

    run_git(&over_git, &["fetch", "--quiet"]).await?;
    assert_eq!(run_git(&over_git, &["rev-parse", "origin/main"]).await?, second);
    run_git(&over_http, &["-c", &config, "fetch", "--quiet"]).await?;
    assert_eq!(run_git(&over_http, &["rev-parse", "origin/main"]).await?, second);

    repo.remove("guestbook/service.yaml").await?;
    let third = repo.commit("drop the service").await?;
    let listed = run_git(
        &over_http,
        &["-c", &config, "ls-remote", &repo.http_url(), "main"],
    )
    .await?;
    assert_eq!(listed, format!("{third}\trefs/heads/main"));
    run_git(&over_git, &["pull", "--quiet", "--ff-only"]).await?;
    assert!(!over_git.join("guestbook/service.yaml").exists());
    Ok(())
}

#[tokio::test]
async fn gzip_encoded_negotiation_after_many_commits_is_served() -> Result<()> {
    let (server, repo, _) = server_with_apps().await?;
    let client = server.scratch("client")?;
    let config = auth_config(&server);
    run_git(
        &client,
        &["-c", &config, "clone", "--quiet", &repo.http_url(), "."],
    )
    .await?;
    // The client's own commits are unknown to the server: each negotiation round lists more of them as
    // "have" lines, and git gzips a request body above 1 KiB.
    for i in 0..40 {
        let message = format!("local {i}");
        let all = [
            "-c",
            "user.name=c",
            "-c",
            "user.email=c@x",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
        ];
        run_git(&client, &[&all[..], &[message.as_str()]].concat()).await?;
    }
    let mut tips = Vec::new();
    for i in 0..30 {
        repo.write("guestbook/version", format!("{i}\n")).await?;
        tips.push(repo.commit(&format!("release {i}")).await?);
        repo.lightweight_tag(&format!("r{i}")).await?;
    }
    run_git(&client, &["-c", &config, "fetch", "--quiet", "--tags", "origin"]).await?;
    assert_eq!(run_git(&client, &["rev-parse", "origin/main"]).await?, tips[29]);
    assert_eq!(run_git(&client, &["rev-parse", "r0^{commit}"]).await?, tips[0]);
    let log = server.http_log();
    assert!(
        log.iter()
            .any(|r| r.gzip && r.path == "git-upload-pack" && r.status == 200),
        "no gzip-encoded upload-pack request: {log:#?}"
    );
    Ok(())
}

#[tokio::test]
async fn http_requests_are_counted_per_repository() -> Result<()> {
    let (server, apps, _) = server_with_apps().await?;
    let infra = server.create_repo("infra").await?;
    infra.write("ns.yaml", "kind: Namespace\n").await?;
    infra.commit("namespace").await?;
    let config = auth_config(&server);
    let dir = server.scratch("c")?;
    assert_eq!(server.http_requests("apps"), 0);

    run_git(&dir, &["-c", &config, "ls-remote", &apps.http_url()]).await?;
    let after_ls_remote = server.http_requests("apps");
    assert!(after_ls_remote >= 1, "{:#?}", server.http_log());
    assert_eq!(server.http_requests("infra"), 0);

    run_git(
        &dir,
        &["-c", &config, "clone", "--quiet", &infra.http_url(), "infra"],
    )
    .await?;
    assert!(server.http_requests("infra.git") >= 2, "{:#?}", server.http_log());
    assert_eq!(server.http_requests("apps"), after_ls_remote);
    run_git(&dir, &["-c", &config, "ls-remote", &apps.http_url()]).await?;
    assert_eq!(server.http_requests("apps"), 2 * after_ls_remote);
    assert_eq!(server.http_requests("unknown"), 0);
    Ok(())
}

/// A repository with commit `one` (annotated tag `v1`, lightweight tag `light`, branch `release`) and then
/// commit `two` on main.
async fn two_commits(server: &GitServer) -> Result<(Repo, String, String)> {
    let repo = server.create_repo("guestbook").await?;
    repo.write("app.yaml", "kind: ConfigMap\n").await?;
    let one = repo.commit("one").await?;
    repo.tag("v1").await?;
    repo.lightweight_tag("light").await?;
    repo.branch("release").await?;
    repo.write("app.yaml", "kind: Secret\n").await?;
    let two = repo.commit("two").await?;
    Ok((repo, one, two))
}

/// Resolves every kind of revision of [`two_commits`] through `url` and checks both commits out.
async fn resolve_and_check_out(
    cache: &GitCache,
    url: &str,
    creds: &Credentials,
    one: &str,
    two: &str,
) -> Result<()> {
    for (revision, want) in [
        ("HEAD", two),
        ("", two),
        ("main", two),
        ("refs/heads/main", two),
        ("release", one),
        ("v1", one),
        ("light", one),
        (one, one),
        (&two.to_ascii_uppercase(), two),
    ] {
        let got = cache.resolve(url, revision, creds).await?;
        ensure!(got == want, "{url} {revision:?} resolved to {got}, want {want}");
    }
    let tree = cache.checkout(url, one, creds).await?;
    assert_eq!(
        std::fs::read_to_string(tree.join("app.yaml"))?,
        "kind: ConfigMap\n",
        "{url}"
    );
    let tree = cache.checkout(url, two, creds).await?;
    assert_eq!(
        std::fs::read_to_string(tree.join("app.yaml"))?,
        "kind: Secret\n",
        "{url}"
    );
    Ok(())
}

#[tokio::test]
async fn git_cache_resolves_and_checks_out_over_git_http_and_file() -> Result<()> {
    let server = GitServer::start().await?;
    let (repo, one, two) = two_commits(&server).await?;
    let cache = GitCache::new(server.scratch("cache")?, Duration::from_secs(30), 2);
    let none = Credentials::default();
    resolve_and_check_out(&cache, &repo.git_url(), &none, &one, &two).await?;
    resolve_and_check_out(&cache, &repo.http_url(), &credentials(&server), &one, &two).await?;
    resolve_and_check_out(&cache, &repo.file_url(), &none, &one, &two).await?;
    assert!(server.http_requests("guestbook") > 0);

    repo.switch("release").await?;
    repo.write("app.yaml", "kind: Job\n").await?;
    let hotfix = repo.commit("hotfix on release").await?;
    let creds = credentials(&server);
    assert_eq!(cache.resolve(&repo.http_url(), "release", &creds).await?, hotfix);
    assert_eq!(cache.resolve(&repo.http_url(), "main", &creds).await?, two);
    let tree = cache.checkout(&repo.git_url(), &hotfix, &none).await?;
    assert_eq!(std::fs::read_to_string(tree.join("app.yaml"))?, "kind: Job\n");
    repo.switch("main").await?;
    assert_eq!(repo.head().await?, two);
    Ok(())
}

#[tokio::test]
async fn git_cache_checks_out_a_commit_that_is_no_longer_a_tip() -> Result<()> {
    let server = GitServer::start().await?;
    let repo = server.create_repo("history").await?;
    let mut commits = Vec::new();
    for i in 0..4 {
        repo.write("app.yaml", format!("generation: {i}\n")).await?;
        commits.push(repo.commit(&format!("generation {i}")).await?);
    }
    let cache = GitCache::new(server.scratch("cache")?, Duration::from_secs(30), 2);
    for (url, creds) in [
        (repo.git_url(), Credentials::default()),
        (repo.http_url(), credentials(&server)),
        (repo.file_url(), Credentials::default()),
    ] {
        let tree = cache.checkout(&url, &commits[1], &creds).await?;
        let file = std::fs::read_to_string(tree.join("app.yaml"))?;
        assert_eq!(file, "generation: 1\n", "{url}");
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_checkouts_of_one_commit_share_one_fetch() -> Result<()> {
    let server = GitServer::start().await?;
    let (repo, one, two) = two_commits(&server).await?;
    let creds = credentials(&server);
    let cache = Arc::new(GitCache::new(
        server.scratch("cache")?,
        Duration::from_secs(30),
        4,
    ));
    let url = repo.http_url();

    let before = server.http_requests("guestbook");
    let (a, b) = tokio::join!(
        cache.checkout(&url, &two, &creds),
        cache.checkout(&url, &two, &creds)
    );
    assert_eq!(a?, b?, "one tree for both");
    let one_fetch = server.http_requests("guestbook") - before;
    assert!(one_fetch >= 1);

    let again = server.http_requests("guestbook");
    cache.checkout(&url, &two, &creds).await?;
    assert_eq!(
        server.http_requests("guestbook"),
        again,
        "a checked-out commit is not fetched again"
    );

    let before_one = server.http_requests("guestbook");
    cache.checkout(&url, &one, &creds).await?;
    assert_eq!(
        server.http_requests("guestbook") - before_one,
        one_fetch,
        "another commit costs one more fetch: {:#?}",
        server.http_log()
    );

    repo.write("app.yaml", "kind: Service\n").await?;
    let three = repo.commit("three").await?;
    assert_eq!(cache.resolve(&url, "main", &creds).await?, three);
    let tree = cache.checkout(&url, &three, &creds).await?;
    assert_eq!(std::fs::read_to_string(tree.join("app.yaml"))?, "kind: Service\n");
    Ok(())
}

#[tokio::test]
async fn git_cache_wrong_credentials_fail_without_showing_them() -> Result<()> {
    let server = GitServer::start().await?;
    let (repo, _, two) = two_commits(&server).await?;
    let cache = GitCache::new(server.scratch("cache")?, Duration::from_secs(30), 2);
    let password = "hunter2-wrong-password";
    let wrong = Credentials {
        username: Some(server.username().to_string()),
        password: Some(password.to_string()),
    };
    let header = basic_auth(server.username(), password);
    let token = header.trim_start_matches("Basic ");

    let resolve = cache.resolve(&repo.http_url(), "main", &wrong).await.unwrap_err();
    let checkout = cache.checkout(&repo.http_url(), &two, &wrong).await.unwrap_err();
    for err in [resolve, checkout] {
        assert!(matches!(err, GitError::Failed { .. }), "{err:?}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains(password), "{text}");
        assert!(!text.contains(token), "{text}");
        assert!(!text.contains(server.password()), "{text}");
    }

    let anonymous = cache
        .resolve(&repo.http_url(), "main", &Credentials::default())
        .await;
    assert!(matches!(anonymous, Err(GitError::Failed { .. })), "{anonymous:?}");
    assert_eq!(server.http_requests("guestbook"), 0, "{:#?}", server.http_log());
    Ok(())
}

#[tokio::test]
async fn git_cache_unknown_revisions_are_unknown_over_every_transport() -> Result<()> {
    let server = GitServer::start().await?;
    let (repo, _, _) = two_commits(&server).await?;
    let cache = GitCache::new(server.scratch("cache")?, Duration::from_secs(30), 2);
    for (url, creds) in [
        (repo.git_url(), Credentials::default()),
        (repo.http_url(), credentials(&server)),
        (repo.file_url(), Credentials::default()),
    ] {
        let err = cache.resolve(&url, "no-such-branch", &creds).await.unwrap_err();
        assert_eq!(
            err,
            GitError::UnknownRevision {
                revision: "no-such-branch".to_string()
            },
            "{url}"
        );
    }
    Ok(())
}
