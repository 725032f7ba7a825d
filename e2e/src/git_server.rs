//! A real Git server on 127.0.0.1 for the Application controller's tests: bare repositories under a temporary
//! root, served at once by `git daemon` (`git://`) and by `git http-backend` behind a small HTTP server that
//! requires basic auth (smart HTTP, fetch only). [`Repo`] commits to a repository through a working clone and
//! pushes by file path, so that a test changes "the Git repository" the way a user does.
//!
//! Every git child runs with `GIT_CONFIG_GLOBAL=/dev/null` and `GIT_CONFIG_NOSYSTEM=1` (see [`git_command`]):
//! the user's and the machine's git configuration never leak into a test.

use std::{
    io::Read as _,
    path::{Component, Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::Engine as _;
use futures::StreamExt as _;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    process::{Child, ChildStdout, Command},
};

use crate::cluster::free_port;

/// The author and committer of every commit a [`Repo`] makes.
const AUTHOR: [&str; 4] = [
    "-c",
    "user.name=Sluice E2E",
    "-c",
    "user.email=e2e@sluice.invalid",
];

/// The largest CGI header block the HTTP server reads before it gives up on `git http-backend`.
const MAX_CGI_HEAD: usize = 64 * 1024;

/// A `git` command with no global or system configuration, no terminal prompt and no inherited repository
/// (`GIT_DIR` and friends are removed), for the server's own children and for the tests' clients.
pub fn git_command() -> Command {
    clean_git(Path::new("git"))
}

/// `program` (git or one of its helpers) with the environment of [`git_command`].
fn clean_git(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_CONFIG_COUNT",
        "GIT_CONFIG_PARAMETERS",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
        "GIT_PROTOCOL",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// Runs `git -C <dir> <args>` (see [`git_command`]) and returns its trimmed standard output; fails with its
/// standard error.
pub async fn run_git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = git_command()
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .await
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} in {} failed ({}): {}",
            args.join(" "),
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// git's helper programs directory (`git --exec-path`). The servers run `git-daemon` and `git-http-backend`
/// from there rather than through `git daemon`, which would be a `git` parent forking them: killing that
/// parent would leave the daemon running.
async fn exec_path() -> Result<PathBuf> {
    let out = git_command()
        .arg("--exec-path")
        .output()
        .await
        .context("running git --exec-path")?;
    if !out.status.success() {
        bail!(
            "git --exec-path failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `n` random bytes from the kernel, in hex.
fn random_hex(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The server's temporary directory; removed when the server and every [`Repo`] of it are gone.
struct Dirs {
    base: PathBuf,
    /// The bare repositories (git daemon's base path and http-backend's project root).
    root: PathBuf,
    /// The working clones of the repositories, outside `root` so that neither server exports them.
    work: PathBuf,
    logs: PathBuf,
}

impl Dirs {
    fn create() -> Result<Self> {
        let base = std::env::temp_dir().join(format!("sluice-git-{}-{}", std::process::id(), random_hex(6)?));
        let dirs = Dirs {
            root: base.join("repos"),
            work: base.join("work"),
            logs: base.join("logs"),
            base,
        };
        std::fs::create_dir(&dirs.base).with_context(|| format!("creating {}", dirs.base.display()))?;
        for dir in [&dirs.root, &dirs.work, &dirs.logs] {
            std::fs::create_dir(dir)?;
        }
        Ok(dirs)
    }
}

impl Drop for Dirs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// One request the HTTP server answered, for assertions on what a client asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// The repository's name (without `.git`), when the path names one.
    pub repo: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The path below the repository, e.g. `info/refs` or `git-upload-pack` (the full path otherwise).
    pub path: String,
    /// The query string, e.g. `service=git-upload-pack`.
    pub query: String,
    /// Whether the request body was gzip-encoded (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// The status code of the answer (401 when the credentials were missing or wrong).
    pub status: u16,
}

impl HttpRequest {
    /// Whether git's smart HTTP protocol served it: `info/refs` or `git-upload-pack`, past authentication.
    pub fn is_git_request(&self) -> bool {
        self.status != 401 && matches!(self.path.as_str(), "info/refs" | "git-upload-pack")
    }
}

/// What the HTTP handler shares.
struct Http {
    root: PathBuf,
    /// `git-http-backend` of git's exec path.
    backend: PathBuf,
    username: String,
    password: String,
    backend_log: PathBuf,
    requests: Mutex<Vec<HttpRequest>>,
}

/// A running Git server; dropping it stops git daemon and the HTTP server.
pub struct GitServer {
    dirs: Arc<Dirs>,
    git_port: u16,
    http_port: u16,
    http: Arc<Http>,
    http_task: tokio::task::JoinHandle<()>,
    /// git daemon, killed on drop.
    daemon: Child,
}

impl GitServer {
    /// Creates an empty root of bare repositories and serves it over `git://` (git daemon) and over basic-auth
    /// smart HTTP (git http-backend), each on a free port of 127.0.0.1, once both accept connections. git
    /// daemon also dies with the thread that started it ([`crate::process::die_with_parent`]), so that a
    /// killed test leaves no daemon behind.
    pub async fn start() -> Result<GitServer> {
        let dirs = Arc::new(Dirs::create()?);
        let exec_path = exec_path().await?;
        let (daemon, git_port) = start_daemon(&exec_path.join("git-daemon"), &dirs).await?;
        let http = Arc::new(Http {
            root: dirs.root.clone(),
            backend: exec_path.join("git-http-backend"),
            username: format!("e2e-{}", random_hex(4)?),
            password: random_hex(16)?,
            backend_log: dirs.logs.join("http-backend.log"),
            requests: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http_port = listener.local_addr()?.port();
        let app = Router::new().fallback(serve_http).with_state(http.clone());
        let http_task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(GitServer {
            dirs,
            git_port,
            http_port,
            http,
            http_task,
            daemon,
        })
    }

    /// Creates an empty bare repository `<root>/<name>.git` whose default branch is `main`, and its working
    /// clone. The name is one path segment of letters, digits, `-`, `_` and `.`.
    pub async fn create_repo(&self, name: &str) -> Result<Repo> {
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            bail!("invalid repository name {name:?}");
        }
        let bare = self.dirs.root.join(format!("{name}.git"));
        let work = self.dirs.work.join(name);
        if bare.exists() {
            bail!("repository {name} already exists");
        }
        let b = bare.to_string_lossy();
        let w = work.to_string_lossy();
        let root = &self.dirs.root;
        run_git(root, &["init", "--quiet", "--bare", "--initial-branch=main", &b]).await?;
        run_git(root, &["init", "--quiet", "--initial-branch=main", &w]).await?;
        run_git(&work, &["remote", "add", "origin", &b]).await?;
        Ok(Repo {
            name: name.to_string(),
            bare,
            work,
            git_port: self.git_port,
            http_port: self.http_port,
            _dirs: self.dirs.clone(),
        })
    }

    /// The user name the HTTP server requires.
    pub fn username(&self) -> &str {
        &self.http.username
    }

    /// The password the HTTP server requires (random per server).
    pub fn password(&self) -> &str {
        &self.http.password
    }

    /// The value of the `Authorization` header the HTTP server accepts: `Basic <base64(user:password)>`.
    pub fn authorization(&self) -> String {
        basic_auth(self.username(), self.password())
    }

    /// The port of git daemon.
    pub fn git_port(&self) -> u16 {
        self.git_port
    }

    /// The port of the HTTP server.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The process id of git daemon while it runs.
    pub fn daemon_pid(&self) -> Option<u32> {
        self.daemon.id()
    }

    /// The directory of the bare repositories.
    pub fn root(&self) -> &Path {
        &self.dirs.root
    }

    /// A new empty directory `name` under the server's temporary directory (for clones and caches of the
    /// test), removed with the server.
    pub fn scratch(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dirs.base.join("scratch").join(name);
        std::fs::create_dir_all(dir.parent().unwrap_or(&self.dirs.base))?;
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir)
    }

    /// How many smart-HTTP requests (`info/refs` and `git-upload-pack`, past authentication) hit repository
    /// `repo` (its name, with or without `.git`).
    pub fn http_requests(&self, repo: &str) -> usize {
        let repo = repo.strip_suffix(".git").unwrap_or(repo);
        self.http_log()
            .iter()
            .filter(|r| r.repo.as_deref() == Some(repo) && r.is_git_request())
            .count()
    }

    /// Every request the HTTP server answered so far, oldest first, rejected ones included.
    pub fn http_log(&self) -> Vec<HttpRequest> {
        self.http.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The logs of git daemon and git http-backend (for failure messages).
    pub fn logs(&self) -> String {
        ["git-daemon.log", "http-backend.log"]
            .iter()
            .map(|name| {
                let text = std::fs::read_to_string(self.dirs.logs.join(name)).unwrap_or_default();
                format!("== {name}\n{text}")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        self.http_task.abort();
    }
}

/// `Basic <base64(user:password)>`.
pub fn basic_auth(username: &str, password: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    format!("Basic {token}")
}

/// Starts git daemon on a free port and waits until it accepts connections; a port taken between the choice
/// and the bind makes it try another one.
async fn start_daemon(daemon: &Path, dirs: &Dirs) -> Result<(Child, u16)> {
    let log_path = dirs.logs.join("git-daemon.log");
    let mut last = anyhow!("git daemon did not start");
    for _ in 0..3 {
        let port = free_port()?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let mut cmd = clean_git(daemon);
        cmd.arg("--export-all")
            .arg(format!("--base-path={}", dirs.root.display()))
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg("--informative-errors")
            .arg("--verbose")
            .stdout(log.try_clone()?)
            .stderr(log);
        crate::process::die_with_parent(cmd.as_std_mut());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", daemon.display()))?;
        match wait_accepting(&mut child, port).await {
            Ok(()) => return Ok((child, port)),
            Err(e) => {
                let _ = child.kill().await;
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                last = anyhow!("{e:#}; git daemon's log:\n{text}");
                if !text.contains("in use") {
                    break;
                }
            }
        }
    }
    Err(last)
}

/// Waits until `port` accepts connections, failing at once when `child` exits first.
async fn wait_accepting(child: &mut Child, port: u16) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("git daemon exited with {status}");
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("git daemon did not accept connections on port {port} within 20s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The repository a request path names and the path below it: `/a.git/info/refs` is (`a`, `info/refs`).
fn split_repo_path(path: &str) -> (Option<String>, String) {
    let trimmed = path.trim_start_matches('/');
    match trimmed.split_once(".git/") {
        Some((repo, rest)) if !repo.is_empty() => (Some(repo.to_string()), rest.to_string()),
        _ => (None, path.to_string()),
    }
}

impl Http {
    /// Whether the request carries this server's user and password as basic auth.
    fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        let decoded = base64::engine::general_purpose::STANDARD.decode(token.trim());
        scheme.eq_ignore_ascii_case("basic")
            && decoded.is_ok_and(|d| d == format!("{}:{}", self.username, self.password).as_bytes())
    }

    fn record(&self, request: HttpRequest) {
        if let Ok(mut requests) = self.requests.lock() {
            requests.push(request);
        }
    }
}

/// The HTTP server's only handler: basic auth, then git http-backend as a CGI.
async fn serve_http(State(http): State<Arc<Http>>, request: Request) -> Response {
    let (repo, path) = split_repo_path(request.uri().path());
    let gzip = request
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip"));
    let mut record = HttpRequest {
        repo,
        method: request.method().to_string(),
        path,
        query: request.uri().query().unwrap_or_default().to_string(),
        gzip,
        status: 0,
    };
    let response = if http.authorized(request.headers()) {
        run_backend(&http, request).await.unwrap_or_else(|e| {
            let message = format!("{e:#}\n");
            append_log(&http.backend_log, &message);
            (StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
        })
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, r#"Basic realm="git""#)],
            "authentication required\n",
        )
            .into_response()
    };
    record.status = response.status().as_u16();
    http.record(record);
    response
}

fn append_log(path: &Path, text: &str) {
    use std::io::Write as _;
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(text.as_bytes());
    }
}

/// Runs git http-backend for one request: the request's body streams to its standard input, its standard
/// output is parsed as a CGI answer (headers, a blank line, the body) and the body streams back.
async fn run_backend(http: &Http, request: Request) -> Result<Response> {
    let (parts, body) = request.into_parts();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&http.backend_log)?;
    let mut cmd = Command::new(&http.backend);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &http.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("REMOTE_USER", &http.username)
        .env("REMOTE_ADDR", "127.0.0.1");
    // git http-backend inflates a gzip body itself, and reads to the end when there is no CONTENT_LENGTH
    // (a chunked request); HTTP_GIT_PROTOCOL carries the client's protocol version (v2).
    for (var, name) in [
        ("CONTENT_TYPE", header::CONTENT_TYPE.as_str()),
        ("CONTENT_LENGTH", header::CONTENT_LENGTH.as_str()),
        ("HTTP_CONTENT_ENCODING", header::CONTENT_ENCODING.as_str()),
        ("HTTP_GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(value) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
            cmd.env(var, value);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("starting git http-backend")?;
    let mut stdin = child.stdin.take().context("http-backend's stdin")?;
    let mut stdout = child.stdout.take().context("http-backend's stdout")?;
    tokio::spawn(async move {
        let mut chunks = body.into_data_stream();
        while let Some(Ok(chunk)) = chunks.next().await {
            if stdin.write_all(&chunk).await.is_err() {
                break;
            }
        }
    });
    let (head, rest) = read_cgi_head(&mut stdout).await?;
    let (status, headers) = parse_cgi_head(&head)?;
    let mut response = Response::new(Body::from_stream(cgi_body(stdout, rest, child)));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// Reads the CGI header block (up to the first blank line) and returns it with the body bytes read past it.
async fn read_cgi_head(stdout: &mut ChildStdout) -> Result<(String, Bytes)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let ends = [&b"\r\n\r\n"[..], &b"\n\n"[..]].map(|sep| {
            buf.windows(sep.len())
                .position(|w| w == sep)
                .map(|at| (at, at + sep.len()))
        });
        if let Some((end, body)) = ends.into_iter().flatten().min() {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            return Ok((head, Bytes::copy_from_slice(&buf[body..])));
        }
        if buf.len() > MAX_CGI_HEAD {
            bail!("git http-backend sent more than {MAX_CGI_HEAD} bytes of headers");
        }
        let n = stdout.read(&mut chunk).await?;
        if n == 0 {
            bail!("git http-backend ended before the end of its headers");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The status (`Status: 404 Not Found`, 200 without one) and the other headers of a CGI header block.
fn parse_cgi_head(head: &str) -> Result<(StatusCode, HeaderMap)> {
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in head.lines() {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("bad CGI header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            status = StatusCode::from_bytes(code.as_bytes())
                .with_context(|| format!("bad CGI status {value:?}"))?;
        } else {
            headers.append(
                HeaderName::from_bytes(name.trim().as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
    }
    Ok((status, headers))
}

/// The CGI body: `first` (read with the headers), then the rest of standard output; the child is reaped at
/// the end and killed if the client goes away first.
fn cgi_body(
    stdout: ChildStdout,
    first: Bytes,
    child: Child,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let state = Some((stdout, Some(first), child));
    futures::stream::unfold(state, |state| async move {
        let (mut stdout, first, mut child) = state?;
        if let Some(first) = first.filter(|b| !b.is_empty()) {
            return Some((Ok(first), Some((stdout, None, child))));
        }
        let mut buf = vec![0u8; 64 * 1024];
        match stdout.read(&mut buf).await {
            Ok(0) => {
                let _ = child.wait().await;
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some((stdout, None, child))))
            }
            Err(e) => Some((Err(e), None)),
        }
    })
}

/// A repository of a [`GitServer`] and its working clone. Changes are made in the clone ([`Repo::write`],
/// [`Repo::remove`]) and reach the served repository with [`Repo::commit`].
pub struct Repo {
    name: String,
    bare: PathBuf,
    work: PathBuf,
    git_port: u16,
    http_port: u16,
    _dirs: Arc<Dirs>,
}

impl Repo {
    /// The repository's name (without `.git`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `git://127.0.0.1:PORT/<name>.git` (git daemon).
    pub fn git_url(&self) -> String {
        format!("git://127.0.0.1:{}/{}.git", self.git_port, self.name)
    }

    /// `http://127.0.0.1:PORT/<name>.git` (smart HTTP; the credentials are not in it).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}/{}.git", self.http_port, self.name)
    }

    /// `file://<root>/<name>.git`.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }

    /// The bare repository's directory.
    pub fn bare_dir(&self) -> &Path {
        &self.bare
    }

    /// The working clone's directory.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// The working-clone path of `path`, which must be relative and stay inside the clone.
    fn file(&self, path: &str) -> Result<PathBuf> {
        let relative = Path::new(path);
        let inside = relative
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if path.is_empty() || !inside || relative.starts_with(".git") {
            bail!("{path:?} is not a relative path inside the repository");
        }
        Ok(self.work.join(relative))
    }

    /// Writes a file (creating its directories) in the working clone; [`Repo::commit`] publishes it.
    pub async fn write(&self, path: &str, content: impl AsRef<[u8]>) -> Result<()> {
        let file = self.file(path)?;
        if let Some(dir) = file.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        tokio::fs::write(&file, content)
            .await
            .with_context(|| format!("writing {}", file.display()))
    }

    /// Removes a file or a directory from the working clone; [`Repo::commit`] publishes it.
    pub async fn remove(&self, path: &str) -> Result<()> {
        let file = self.file(path)?;
        let removed = if tokio::fs::metadata(&file).await?.is_dir() {
            tokio::fs::remove_dir_all(&file).await
        } else {
            tokio::fs::remove_file(&file).await
        };
        removed.with_context(|| format!("removing {}", file.display()))
    }

    async fn git(&self, args: &[&str]) -> Result<String> {
        let all: Vec<&str> = AUTHOR.iter().chain(args).copied().collect();
        run_git(&self.work, &all).await
    }

    /// Commits every change of the working clone (an empty commit when there is none) on the current branch,
    /// pushes it to the served repository and returns the commit's full SHA.
    pub async fn commit(&self, message: &str) -> Result<String> {
        self.git(&["add", "--all"]).await?;
        self.git(&["commit", "--quiet", "--allow-empty", "-m", message])
            .await?;
        let branch = self.git(&["symbolic-ref", "--short", "HEAD"]).await?;
        let refspec = format!("HEAD:refs/heads/{branch}");
        self.git(&["push", "--quiet", "origin", &refspec]).await?;
        self.head().await
    }

    /// Creates an annotated tag `name` at the current commit and pushes it.
    pub async fn tag(&self, name: &str) -> Result<()> {
        self.git(&["tag", "--annotate", "-m", name, name]).await?;
        self.git(&["push", "--quiet", "origin", &format!("refs/tags/{name}")])
            .await
            .map(drop)
    }

    /// Creates a lightweight tag `name` at the current commit and pushes it.
    pub async fn lightweight_tag(&self, name: &str) -> Result<()> {
        self.git(&["tag", name]).await?;
        self.git(&["push", "--quiet", "origin", &format!("refs/tags/{name}")])
            .await
            .map(drop)
    }

    /// Creates a branch `name` at the current commit and pushes it; the working clone stays on its branch.
    pub async fn branch(&self, name: &str) -> Result<()> {
        self.git(&["branch", name]).await?;
        self.git(&["push", "--quiet", "origin", &format!("{name}:refs/heads/{name}")])
            .await
            .map(drop)
    }

    /// Makes `name` the working clone's current branch, creating it at the current commit when it is new, so
    /// that the next [`Repo::commit`] goes to it.
    pub async fn switch(&self, name: &str) -> Result<()> {
        let exists = self
            .git(&["rev-parse", "--verify", "--quiet", &format!("refs/heads/{name}")])
            .await
            .is_ok();
        if exists {
            self.git(&["switch", "--quiet", name]).await?;
        } else {
            self.git(&["switch", "--quiet", "--create", name]).await?;
        }
        Ok(())
    }

    /// The full SHA of the working clone's current commit (the last one [`Repo::commit`] pushed).
    pub async fn head(&self) -> Result<String> {
        self.git(&["rev-parse", "HEAD"]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_paths_name_their_repository() {
        assert_eq!(
            split_repo_path("/apps.git/info/refs"),
            (Some("apps".to_string()), "info/refs".to_string())
        );
        assert_eq!(
            split_repo_path("/apps.git/git-upload-pack"),
            (Some("apps".to_string()), "git-upload-pack".to_string())
        );
        assert_eq!(
            split_repo_path("/favicon.ico"),
            (None, "/favicon.ico".to_string())
        );
    }

    #[test]
    fn cgi_heads_give_status_and_headers() {
        let (status, headers) =
            parse_cgi_head("Status: 404 Not Found\r\nContent-Type: text/plain\r\nExpires: Fri, 01 Jan 1980")
                .unwrap();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(headers[header::CONTENT_TYPE], "text/plain");
        assert_eq!(headers[header::EXPIRES], "Fri, 01 Jan 1980");
        let (status, _) = parse_cgi_head("Content-Type: application/x-git-upload-pack-result").unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(parse_cgi_head("no colon").is_err());
    }

    #[test]
    fn basic_auth_is_base64_of_user_and_password() {
        assert_eq!(basic_auth("bob", "s3cret"), "Basic Ym9iOnMzY3JldA==");
    }
}
