//! `kubectl sluice dashboard` end to end: the built plugin serves a namespace whose canary the operator walks.
//! Its JSON API and event stream are read as a client would, and headless Chromium, driven over WebDriver by
//! Debian's chromedriver, loads the page, opens the Rollout and promotes it with the Promote button and its
//! confirmation. Screenshots land in target/dashboard*.png.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};
use sluice_e2e::{
    cluster::{free_port, wait_for},
    harness::{namespace_with_operator, plugin_binary},
    plugin::Plugin,
    rollouts::{canary_rollout_yaml, healthy, phase, set_image, step, wait_rollout},
};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

/// The dashboard process; killed when dropped, its standard error printed if the test failed.
struct Dashboard {
    child: Child,
    /// The URL it printed (`http://localhost:<port>/rollouts`).
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Dashboard {
    /// Starts `kubectl sluice dashboard -p <port>` and waits for its "now available" line.
    fn start(plugin: &Plugin, port: u16) -> Result<Self> {
        let mut child = plugin
            .command(&["dashboard", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kubectl-sluice dashboard")?;
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().context("dashboard stderr")?;
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                log.lock().map(|mut l| l.push_str(&format!("{line}\n"))).ok();
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("is now available at") => {
                    let url = line.rsplit(' ').next().unwrap_or_default().to_string();
                    assert_eq!(
                        line,
                        format!(
                            "INFO[0000] Sluice Dashboard is now available at http://localhost:{port}/rollouts"
                        ),
                        "upstream's line, in Sluice's name"
                    );
                    return Ok(Self { child, url, stderr });
                }
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    let text = stderr.lock().map(|s| s.clone()).unwrap_or_default();
                    bail!("the dashboard did not say it is available within 30s; stderr:\n{text}");
                }
            }
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit; whether it exited successfully.
    fn interrupt(&mut self) -> Result<bool> {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the dashboard did not exit within 15s of Ctrl-C")
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = self.stderr.lock().map(|s| s.clone()).unwrap_or_default();
            eprintln!("==== dashboard stderr ====\n{text}");
        }
    }
}

/// The dashboard's Server-Sent Events, read as a browser's EventSource reads them.
struct Feed {
    response: reqwest::Response,
    buffer: String,
}

impl Feed {
    async fn open(url: &str) -> Result<Self> {
        let response = reqwest::get(url).await?.error_for_status()?;
        let kind = response.headers().get("content-type").cloned();
        anyhow::ensure!(
            kind.as_ref().is_some_and(|k| k == "text/event-stream"),
            "content type {kind:?}"
        );
        Ok(Self {
            response,
            buffer: String::new(),
        })
    }

    /// The data of the next event (keep-alive comments skipped).
    async fn next(&mut self, timeout: Duration) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event.lines().filter_map(|l| l.strip_prefix("data: ")).collect();
                if !data.is_empty() {
                    return Ok(serde_json::from_str(&data.join("\n"))?);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .map_err(|_| anyhow!("no event within {timeout:?}"))??
                .context("the stream ended")?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads events until one shows the rollout `name` in which `check` holds.
    async fn until(&mut self, name: &str, secs: u64, check: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = Value::Null;
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(list) = self.next(left).await else { break };
            if let Some(ro) = rollout_of(&list, name) {
                if check(ro) {
                    return Ok(ro.clone());
                }
                last = ro.clone();
            }
        }
        bail!("no event within {secs}s showed the wanted state of {name}; last: {last}")
    }
}

fn rollout_of<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_array()?.iter().find(|r| r["name"] == name)
}

/// A WebDriver session of headless Chromium through chromedriver; both end when dropped.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    async fn start(chromium: &Path, chromedriver: &Path) -> Result<Self> {
        let port = free_port()?;
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        };
        wait_for("chromedriver to be ready", Duration::from_secs(30), || async {
            let status = browser
                .http
                .get(format!("{}/status", browser.base))
                .send()
                .await?;
            let body: Value = status.json().await?;
            if body["value"]["ready"] == true {
                Ok(())
            } else {
                Err(anyhow!("{body}"))
            }
        })
        .await?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
                         "--window-size=1280,900"],
            },
        }}});
        let session = browser.call("POST", "/session", capabilities).await?;
        browser.session = session["sessionId"].as_str().context("no sessionId")?.to_string();
        Ok(browser)
    }

    /// One WebDriver command; its `value`, or its error and message.
    async fn call(&self, method: &str, path: &str, body: Value) -> Result<Value> {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = match method {
            "GET" => self.http.get(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request.send().await?;
        let ok = response.status().is_success();
        let answer: Value = response.json().await?;
        let value = answer["value"].clone();
        if !ok {
            bail!(
                "WebDriver {method} {path}: {} {}",
                value["error"],
                value["message"]
            );
        }
        Ok(value)
    }

    async fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", json!({"url": url})).await.map(drop)
    }

    /// The element id of the first match of `css`, waiting up to `secs` for it to appear.
    async fn find(&self, css: &str, secs: u64) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let found = self
                .call("POST", "/element", json!({"using": "css selector", "value": css}))
                .await;
            match found {
                Ok(v) => return Ok(v[ELEMENT].as_str().context("element id")?.to_string()),
                Err(e) if Instant::now() > deadline => return Err(e.context(format!("finding {css}"))),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Clicks the first match of `css` (found again if the page redrew it in between).
    async fn click(&self, css: &str) -> Result<()> {
        let mut last = None;
        for _ in 0..5 {
            let id = self.find(css, 20).await?;
            match self
                .call("POST", &format!("/element/{id}/click"), json!({}))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last
            .unwrap_or_else(|| anyhow!("no click"))
            .context(format!("clicking {css}")))
    }

    /// The visible text of the first match of `css`, waiting up to `secs` for `check` to hold.
    async fn text_until(&self, css: &str, secs: u64, check: impl Fn(&str) -> bool) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        while Instant::now() < deadline {
            let text = match self.find(css, 1).await {
                Ok(id) => {
                    self.call("GET", &format!("/element/{id}/text"), Value::Null)
                        .await
                }
                Err(e) => Err(e),
            };
            match text {
                Ok(Value::String(t)) if check(&t) => return Ok(t),
                Ok(v) => last = v.to_string(),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("{css} did not show the wanted text within {secs}s; last: {last:?}")
    }

    async fn screenshot(&self, path: &Path) -> Result<()> {
        let shot = self.call("GET", "/screenshot", Value::Null).await?;
        let png = base64::engine::general_purpose::STANDARD.decode(shot.as_str().context("screenshot")?)?;
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("screenshot: {}", path.display());
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes Chromium; Drop cannot await, so the request is written by hand.
        if !self.session.is_empty() {
            let addr = self.base.trim_start_matches("http://");
            if let Ok(mut conn) = std::net::TcpStream::connect(addr) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
                let request = format!(
                    "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                    self.session
                );
                if conn.write_all(request.as_bytes()).is_ok() {
                    let _ = conn.read_to_end(&mut Vec::new());
                }
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Chromium and chromedriver, or None with the reason; under CI their absence fails the test (setup.sh installs
/// them).
fn browser_tools() -> Option<(PathBuf, PathBuf)> {
    let chromium = on_path("chromium").or_else(|| on_path("chromium-browser"));
    let driver = on_path("chromedriver");
    if let (Some(c), Some(d)) = (&chromium, &driver) {
        return Some((c.clone(), d.clone()));
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(
        !ci,
        "CI: chromium and chromedriver must be installed (scripts/setup.sh installs chromium and chromium-driver); found chromium {chromium:?}, chromedriver {driver:?}"
    );
    eprintln!(
        "SKIPPED the browser part: chromium or chromedriver is not installed (apt-get install chromium chromium-driver); the API and the event stream are still tested"
    );
    None
}

/// Where screenshots go: the cargo target directory of the built plugin.
fn target_dir() -> PathBuf {
    plugin_binary()
        .ok()
        .and_then(|b| b.parent()?.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| sluice_e2e::repo_dir().join("target"))
}

async fn get_json(url: &str) -> Result<(u16, Value)> {
    let response = reqwest::get(url).await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// Promotes from the page: the list, the Rollout's row, its Promote button, the confirmation; the notice of
/// the answer, and the page's own live update to the promoted state.
async fn promote_in_browser(browser: &Browser, page: &str, name: &str) -> Result<()> {
    let shots = target_dir();
    browser.goto(page).await?;
    let row = format!("tr[data-rollout=\"{name}\"]");
    browser.text_until(&row, 30, |t| t.contains("Paused")).await?;
    browser.screenshot(&shots.join("dashboard-list.png")).await?;
    browser.click(&row).await?;
    browser
        .text_until(&format!("[data-detail=\"{name}\"] h2"), 20, |t| {
            t.contains("Paused")
        })
        .await?;
    browser.find("[data-detail] .pod", 20).await?;
    browser
        .text_until("[data-detail] .analysisrun", 20, |t| t.contains("success-rate"))
        .await?;
    browser.screenshot(&shots.join("dashboard.png")).await?;
    browser.click("button[data-action=\"promote\"]").await?;
    browser.find("button[data-confirm=\"promote\"]", 10).await?;
    browser.screenshot(&shots.join("dashboard-confirm.png")).await?;
    browser.click("button[data-confirm=\"promote\"]").await?;
    let notice = browser.text_until("[data-notice]", 20, |t| !t.is_empty()).await?;
    assert_eq!(notice, format!("rollout '{name}' promoted"));
    browser
        .text_until(&format!("[data-detail=\"{name}\"] h2"), 90, |t| {
            t.contains("Healthy")
        })
        .await?;
    browser.screenshot(&shots.join("dashboard-promoted.png")).await?;
    Ok(())
}

/// A web metric's endpoint on 127.0.0.1: a success rate of 0.99. Returns its port.
async fn serve_success_rate() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().route(
        "/rate",
        axum::routing::get(|| async {
            (
                [(http::header::CONTENT_TYPE, "application/json")],
                r#"{"rate": 0.99}"#,
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

fn analysis_template(name: &str, port: u16) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  metrics:
  - name: success-rate
    count: 2
    interval: 1s
    successCondition: result >= 0.95
    provider:
      web:
        url: http://127.0.0.1:{port}/rate
        jsonPath: "{{$.rate}}"
"#
    )
}

/// The JSON API of a namespace whose `shop` is paused at its second step: the list, one Rollout, the
/// API server's 404 for a missing one (also for an action), and the refusal of another site's POST.
async fn check_api(api: &str, namespace: &str) {
    let (code, list) = get_json(&format!("{api}/rollouts")).await.unwrap();
    assert_eq!(code, 200, "{list}");
    let shop = rollout_of(&list, "shop").unwrap_or_else(|| panic!("shop listed: {list}"));
    assert_eq!(shop["namespace"], namespace);
    assert_eq!(
        (&shop["status"], &shop["icon"]),
        (&json!("Paused"), &json!("paused")),
        "{shop}"
    );
    assert_eq!(
        (&shop["strategy"], &shop["step"]),
        (&json!("Canary"), &json!("2/3")),
        "{shop}"
    );
    assert_eq!(shop["setWeight"], "25", "{shop}");
    let (code, one) = get_json(&format!("{api}/rollouts/shop")).await.unwrap();
    assert_eq!((code, &one["name"]), (200, &json!("shop")));
    let (code, missing) = get_json(&format!("{api}/rollouts/nope")).await.unwrap();
    assert_eq!(code, 404);
    assert_eq!(missing["error"], "rollouts.argoproj.io \"nope\" not found");
    let http = reqwest::Client::new();
    let refused = http
        .post(format!("{api}/rollouts/nope/promote"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status().as_u16(),
        404,
        "the API server's answer passed on"
    );
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"], "rollouts.argoproj.io \"nope\" not found");
    let foreign = http
        .post(format!("{api}/rollouts/shop/abort"))
        .header("Origin", "http://elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        foreign.status().as_u16(),
        403,
        "another site's page may not abort"
    );
}

/// A canary paused after a passing analysis, seen through the API, the event stream and the page, and promoted
/// from the page; then Ctrl-C.
#[tokio::test]
async fn dashboard_serves_the_namespace_and_its_promote_button_moves_a_paused_canary_on() {
    let (ns, _op) = namespace_with_operator(SUPERVISOR, "dashboard", &["pods", "analysisruns"]).await;
    let plugin = Plugin::new(
        &plugin_binary().expect("plugin built"),
        &ns.info.kubeconfig,
        &ns.name,
    );
    let metric_port = serve_success_rate().await;
    ns.apply(&analysis_template("shop-ok", metric_port)).unwrap();
    let steps = "      steps:
      - setWeight: 25
      - analysis: {templates: [{templateName: shop-ok}]}
      - pause: {}
";
    ns.apply(&canary_rollout_yaml("shop", 4, "shop:v1", steps))
        .unwrap();
    wait_rollout(&ns, "shop", "first deploy Healthy", 60, healthy).await;
    set_image(&ns, "shop", "shop:v2");
    wait_rollout(&ns, "shop", "the pause after the analysis", 90, |r| {
        step(r) == 2 && phase(r).0 == "Paused"
    })
    .await;

    let mut dashboard = Dashboard::start(&plugin, free_port().unwrap()).expect("dashboard starts");
    let page = format!("{}/", dashboard.url);
    let api = format!("{page}api/v1");
    let html = reqwest::get(&dashboard.url).await.unwrap().text().await.unwrap();
    assert!(
        html.contains("app.js"),
        "the printed URL leads to the page: {html}"
    );

    check_api(&api, &ns.name).await;

    let mut feed = Feed::open(&format!("{api}/stream")).await.unwrap();
    let first = feed.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        rollout_of(&first, "shop").map(|r| &r["status"]),
        Some(&json!("Paused"))
    );

    match browser_tools() {
        Some((chromium, driver)) => {
            let browser = Browser::start(&chromium, &driver)
                .await
                .expect("chromium over WebDriver");
            if let Err(e) = promote_in_browser(&browser, &page, "shop").await {
                let _ = browser
                    .screenshot(&target_dir().join("dashboard-failure.png"))
                    .await;
                let source = browser.call("GET", "/source", Value::Null).await;
                panic!("promote from the page: {e:#}\npage source: {source:?}");
            }
        }
        None => {
            let answer: Value = reqwest::Client::new()
                .post(format!("{api}/rollouts/shop/promote"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(answer["message"], "rollout 'shop' promoted");
        }
    }

    let ro = wait_rollout(&ns, "shop", "past the pause after the promote", 90, |r| {
        step(r) >= 2
    })
    .await;
    let status = ro.status.clone().unwrap_or_default();
    assert!(
        status.pause_conditions.unwrap_or_default().is_empty(),
        "pause conditions cleared"
    );
    wait_rollout(&ns, "shop", "Healthy on v2", 90, healthy).await;
    let pushed = feed
        .until("shop", 60, |r| r["status"] == "Healthy")
        .await
        .unwrap();
    assert_eq!(pushed["step"], "3/3", "{pushed}");

    // Ctrl-C while a stream is still open: a clean exit.
    assert!(dashboard.interrupt().unwrap(), "exit 0 on Ctrl-C");
}

/// A kubeconfig whose server does not answer: the dashboard says so and exits 1 instead of serving an empty
/// page.
#[tokio::test]
async fn an_unreachable_cluster_is_one_error_line_not_an_empty_dashboard() {
    let dir = std::env::temp_dir().join(format!("sluice-dashboard-unreachable-{}", std::process::id()));
    let plugin = Plugin::unreachable(&plugin_binary().expect("plugin built"), &dir).unwrap();
    let port = free_port().unwrap().to_string();
    let run = tokio::task::spawn_blocking(move || plugin.run(&["dashboard", "-p", &port]));
    let run = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the dashboard exits by itself")
        .unwrap()
        .unwrap();
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with("Error: unable to connect to the server: "),
        "{:?}",
        run.stderr
    );
    assert!(!run.stderr.contains("now available"), "{:?}", run.stderr);
    let _ = std::fs::remove_dir_all(dir);
}
