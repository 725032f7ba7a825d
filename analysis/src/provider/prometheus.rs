//! The Prometheus provider: an instant or range query through the HTTP API.
//!
//! The result is bound as upstream binds it: a scalar is a number, a vector the list of its sample values (labels
//! dropped, order kept), a matrix (range query) all its series' values flattened into one list. The stored value
//! is Go's rendering of that (`0.97`, `[0.97,0.99]`, `[NaN,+Inf]`).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::Method;
use serde::Deserialize;
use sluice_crds::analysis::{PrometheusMetric, PrometheusRangeQueryArgs};

use super::http::{Call, send};
use super::{Reading, ResultValue, go_decimal};
use crate::condition::{eval_time, parse_go_float};
use crate::duration::parse_go_duration;

/// Environment variable naming the Prometheus address when a metric gives none.
pub const ADDRESS_ENV: &str = "ARGO_ROLLOUTS_PROMETHEUS_ADDRESS";

/// Query timeout when the metric sets none (upstream's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const FORM: &str = "application/x-www-form-urlencoded";

/// What marks the address of an Amazon Managed Prometheus workspace.
const MANAGED_PROMETHEUS_MARK: &str = "aps-workspaces";

/// Metric-result metadata key under which upstream records the query it ran (arguments substituted).
pub const RESOLVED_QUERY_KEY: &str = "ResolvedPrometheusQuery";

/// The metadata upstream puts on a Prometheus metric's result (`GetMetadata`): the resolved query, if any.
pub fn metric_metadata(metric: &PrometheusMetric) -> BTreeMap<String, String> {
    metric
        .query
        .iter()
        .filter(|q| !q.is_empty())
        .map(|q| (RESOLVED_QUERY_KEY.to_string(), q.clone()))
        .collect()
}

/// Runs the metric's query, falling back to `ARGO_ROLLOUTS_PROMETHEUS_ADDRESS` for the address; Err is the
/// measurement's error message.
pub async fn measure(metric: &PrometheusMetric) -> Result<Reading, String> {
    let fallback = std::env::var(ADDRESS_ENV).ok();
    measure_with(metric, fallback.as_deref()).await
}

/// Runs the metric's query, with `fallback_address` used when the metric names no address.
pub async fn measure_with(
    metric: &PrometheusMetric,
    fallback_address: Option<&str>,
) -> Result<Reading, String> {
    let address = address(metric.address.as_deref(), fallback_address)?;
    let query = metric
        .query
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .ok_or_else(|| "prometheus query is empty".to_string())?;
    if let Some(option) = refused_option(metric, fallback_address) {
        return Err(option);
    }
    let timeout = timeout(metric.timeout)?;
    let headers = headers(metric);
    let (endpoint, params) = match &metric.range_query {
        None => (
            "query",
            vec![
                ("query", query.to_string()),
                ("time", unix_seconds(SystemTime::now())),
            ],
        ),
        Some(range) => ("query_range", range_params(query, range)?),
    };
    let url = format!("{}/api/v1/{endpoint}", address.trim_end_matches('/'));
    let form = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&params)
        .finish();
    let insecure = metric.insecure.unwrap_or(false);
    let mut answer = send(Call {
        method: Method::POST,
        url: &url,
        headers: headers.clone(),
        body: Some((Bytes::from(form.clone()), Some(FORM))),
        timeout,
        insecure,
    })
    .await?;
    if matches!(answer.status.as_u16(), 405 | 501) {
        // Some proxies and Prometheus-compatible stores only take GET; client_golang falls back the same way.
        let get_url = format!("{url}?{form}");
        answer = send(Call {
            method: Method::GET,
            url: &get_url,
            headers,
            body: None,
            timeout,
            insecure,
        })
        .await?;
    }
    parse_answer(answer.status.as_u16(), &answer.body)
}

fn address<'a>(configured: Option<&'a str>, fallback: Option<&'a str>) -> Result<&'a str, String> {
    let non_empty = |a: Option<&'a str>| a.map(str::trim).filter(|a| !a.is_empty());
    let address = non_empty(configured)
        .or_else(|| non_empty(fallback))
        .ok_or_else(|| {
            format!(
                "prometheus address is not configured: set provider.prometheus.address or the {ADDRESS_ENV} \
             environment variable"
            )
        })?;
    match url::Url::parse(address) {
        Ok(url) if url.has_host() => Ok(address),
        _ => Err(format!(
            "prometheus address \"{address}\" is not a URL such as http://prometheus:9090"
        )),
    }
}

fn timeout(seconds: Option<i64>) -> Result<Duration, String> {
    match seconds {
        // Zero would time out before asking; it means "not set".
        None | Some(0) => Ok(DEFAULT_TIMEOUT),
        Some(s) => u64::try_from(s)
            .map(Duration::from_secs)
            .map_err(|_| "prometheus timeout should not be negative".to_string()),
    }
}

/// The option of the metric that this controller cannot honour, in words for a message; None when it can run
/// the query. `fallback_address` stands for a missing address, as when measuring.
pub fn refused_option(metric: &PrometheusMetric, fallback_address: Option<&str>) -> Option<String> {
    // Argo Rollouts signs every request to an Amazon Managed Prometheus address with SigV4, whether or not
    // `authentication.sigv4` is given; unsigned, such a workspace answers 403 to every query.
    if let Ok(address) = address(metric.address.as_deref(), fallback_address)
        && address.contains(MANAGED_PROMETHEUS_MARK)
    {
        return Some(format!(
            "authentication.sigv4 is not supported by this controller: address \"{address}\" is Amazon \
             Managed Prometheus, whose requests must be signed with AWS SigV4"
        ));
    }
    super::refused_oauth2(metric.authentication.as_ref())
}

fn headers(metric: &PrometheusMetric) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = metric
        .headers
        .iter()
        .flatten()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    if let Some(basic) = metric.authentication.as_ref().and_then(|a| a.basic_auth.as_ref()) {
        let user = basic.username.as_deref().unwrap_or_default();
        let password = basic.password.as_deref().unwrap_or_default();
        if !user.is_empty() || !password.is_empty() {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            headers.push(("Authorization".to_string(), format!("Basic {token}")));
        }
    }
    headers
}

fn range_params(
    query: &str,
    range: &PrometheusRangeQueryArgs,
) -> Result<Vec<(&'static str, String)>, String> {
    let given = |s: &Option<String>| {
        s.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let start = given(&range.start)
        .ok_or_else(|| "rangeQuery.start is required, e.g. now() - duration(\"5m\")".to_string())?;
    let end = given(&range.end).unwrap_or_else(|| "now()".to_string());
    let step = given(&range.step).ok_or_else(|| "rangeQuery.step is required, e.g. 1m".to_string())?;
    let start = eval_time(&start).map_err(|e| format!("rangeQuery.start: {e}"))?;
    let end = eval_time(&end).map_err(|e| format!("rangeQuery.end: {e}"))?;
    let step = parse_go_duration(&step)
        .ok_or_else(|| format!("rangeQuery.step \"{step}\" is not a duration such as 30s or 1m"))?;
    Ok(vec![
        ("query", query.to_string()),
        ("start", unix_seconds(start)),
        ("end", unix_seconds(end)),
        ("step", go_decimal(step.as_secs_f64())),
    ])
}

/// A time as the Prometheus API takes it (and client_golang sends it): Unix seconds with a fraction.
fn unix_seconds(t: SystemTime) -> String {
    let seconds = match t.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_secs_f64(),
        Err(before) => -before.duration().as_secs_f64(),
    };
    go_decimal(seconds)
}

/// The API's envelope.
#[derive(Deserialize)]
struct ApiAnswer {
    #[serde(default)]
    status: String,
    #[serde(default)]
    data: Option<ApiData>,
    #[serde(default, rename = "errorType")]
    error_type: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    warnings: Vec<String>,
}

#[derive(Deserialize)]
struct ApiData {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

/// `[<unix time>, "<value>"]`: Prometheus writes sample values as strings, which is how NaN and ±Inf get through.
type Sample = (serde_json::Value, String);

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    value: Option<Sample>,
    #[serde(default)]
    histogram: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    values: Vec<Sample>,
    #[serde(default)]
    histograms: Option<serde_json::Value>,
}

const NO_HISTOGRAMS: &str = "native histogram samples are not supported: use histogram_quantile() or another function returning floats";

/// Reads an answer of `/api/v1/query` or `/api/v1/query_range`.
fn parse_answer(status: u16, body: &[u8]) -> Result<Reading, String> {
    let parsed = serde_json::from_slice::<ApiAnswer>(body);
    // Prometheus' own words (`bad_data: 1:5: parse error: ...`), whatever the status code.
    if let Ok(answer) = &parsed
        && answer.status == "error"
    {
        return Err(format!("{}: {}", answer.error_type, answer.error));
    }
    if !(200..300).contains(&status) {
        return Err(status_error(status, body));
    }
    let answer = parsed.map_err(|e| format!("bad_response: {e}"))?;
    let data = answer
        .data
        .ok_or_else(|| "bad_response: the answer has no data".to_string())?;
    let values = match data.result_type.as_str() {
        "scalar" => {
            let sample: Sample =
                serde_json::from_value(data.result).map_err(|e| format!("bad_response: {e}"))?;
            let value = sample_value(&sample)?;
            return Ok(reading(
                ResultValue::from(value),
                go_decimal(value),
                &answer.warnings,
            ));
        }
        "vector" => {
            let samples: Vec<VectorSample> =
                serde_json::from_value(data.result).map_err(|e| format!("bad_response: {e}"))?;
            let mut values = Vec::with_capacity(samples.len());
            for sample in &samples {
                match &sample.value {
                    Some(s) => values.push(sample_value(s)?),
                    None if sample.histogram.is_some() => return Err(NO_HISTOGRAMS.to_string()),
                    None => return Err("bad_response: a vector sample has no value".to_string()),
                }
            }
            values
        }
        "matrix" => {
            let series: Vec<MatrixSeries> =
                serde_json::from_value(data.result).map_err(|e| format!("bad_response: {e}"))?;
            if series.iter().any(|s| s.histograms.is_some()) {
                return Err(NO_HISTOGRAMS.to_string());
            }
            series
                .iter()
                .flat_map(|s| &s.values)
                .map(sample_value)
                .collect::<Result<Vec<f64>, String>>()?
        }
        other => return Err(format!("Prometheus metric type not supported: {other}")),
    };
    let value = format!(
        "[{}]",
        values
            .iter()
            .map(|v| go_decimal(*v))
            .collect::<Vec<_>>()
            .join(",")
    );
    Ok(reading(ResultValue::from(values), value, &answer.warnings))
}

fn sample_value((_, value): &Sample) -> Result<f64, String> {
    parse_go_float(value).ok_or_else(|| format!("bad_response: sample value \"{value}\" is not a number"))
}

fn reading(result: ResultValue, value: String, warnings: &[String]) -> Reading {
    let mut metadata = BTreeMap::new();
    if !warnings.is_empty() {
        let quoted: Vec<String> = warnings.iter().map(|w| format!("\"{w}\"")).collect();
        metadata.insert("warnings".to_string(), quoted.join(", "));
    }
    Reading {
        result,
        value,
        metadata,
    }
}

/// A failed answer that is not Prometheus' JSON (e.g. a proxy's page), in client_golang's words plus the first
/// line of what came back.
fn status_error(status: u16, body: &[u8]) -> String {
    let mut message = match status / 100 {
        4 => format!("client_error: client error: {status}"),
        5 => format!("server_error: server error: {status}"),
        _ => format!("bad_response: bad response code {status}"),
    };
    let text = String::from_utf8_lossy(body);
    if let Some(first) = text.lines().map(str::trim).find(|l| !l.is_empty()) {
        let detail: String = first.chars().take(200).collect();
        message.push_str(&format!(" ({detail})"));
    }
    message
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};

    use sluice_crds::analysis::{Authentication, BasicAuth, WebMetricHeader};

    use super::*;
    use crate::Phase;
    use crate::condition::evaluate;

    fn ok(status: u16, body: &str) -> Reading {
        parse_answer(status, body.as_bytes()).expect(body)
    }

    #[test]
    fn scalar_answer() {
        let r = ok(
            200,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"0.5"]}}"#,
        );
        assert_eq!((r.result, r.value.as_str()), (ResultValue::from(0.5), "0.5"));
        assert!(r.metadata.is_empty());
    }

    #[test]
    fn vector_answer_keeps_order_and_drops_labels() {
        let r = ok(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"pod":"b"},"value":[1700000000,"0.97"]},
                {"metric":{"pod":"a"},"value":[1700000000,"0.99"]},
                {"metric":{},"value":[1700000000,"1"]}]}}"#,
        );
        assert_eq!(r.result, ResultValue::from(vec![0.97, 0.99, 1.0]));
        assert_eq!(r.value, "[0.97,0.99,1]");
    }

    #[test]
    fn nan_and_infinities_arrive_as_strings() {
        let r = ok(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{},"value":[1,"NaN"]},{"metric":{},"value":[1,"+Inf"]},{"metric":{},"value":[1,"-Inf"]}]}}"#,
        );
        assert_eq!(r.value, "[NaN,+Inf,-Inf]");
        let Some(values) = r.result.as_expr().as_array() else {
            panic!("a list")
        };
        assert!(values[0].as_float().is_some_and(f64::is_nan));
        assert_eq!(values[1].as_float(), Some(f64::INFINITY));
        assert_eq!(values[2].as_float(), Some(f64::NEG_INFINITY));
        assert_eq!(
            evaluate(Some("isNaN(result[0]) && isInf(result[1])"), None, &r.result),
            Ok(Phase::Successful)
        );
    }

    #[test]
    fn matrix_answer_is_flattened() {
        let r = ok(
            200,
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"pod":"a"},"values":[[1,"10"],[2,"20"]]},
                {"metric":{"pod":"b"},"values":[[1,"30"]]}]}}"#,
        );
        assert_eq!(
            (r.result, r.value.as_str()),
            (ResultValue::from(vec![10.0, 20.0, 30.0]), "[10,20,30]")
        );
    }

    #[test]
    fn empty_vector_is_an_empty_list() {
        let r = ok(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        );
        assert_eq!(
            (r.result.clone(), r.value.as_str()),
            (ResultValue::from(Vec::<f64>::new()), "[]")
        );
        let err = evaluate(Some("result[0] >= 0.95"), None, &r.result).unwrap_err();
        assert!(err.contains("metric result is nil or empty"), "{err}");
        assert_eq!(
            evaluate(Some("len(result) == 0 || result[0] >= 0.95"), None, &r.result),
            Ok(Phase::Successful)
        );
    }

    #[test]
    fn warnings_go_to_metadata() {
        let r = ok(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"2"]}]},
                "warnings":["PromQL warning: one","two"]}"#,
        );
        assert_eq!(
            r.metadata.get("warnings").map(String::as_str),
            Some(r#""PromQL warning: one", "two""#)
        );
    }

    #[test]
    fn error_answers() {
        let cases = [
            (
                400,
                r#"{"status":"error","errorType":"bad_data","error":"1:15: parse error: unclosed left parenthesis"}"#,
                "bad_data: 1:15: parse error: unclosed left parenthesis",
            ),
            (
                503,
                r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#,
                "timeout: query timed out",
            ),
            (
                422,
                r#"{"status":"error","errorType":"execution","error":"many-to-many"}"#,
                "execution: many-to-many",
            ),
            (
                502,
                "<html>\n<h1>502 Bad Gateway</h1></html>",
                "server_error: server error: 502 (<html>)",
            ),
            (
                404,
                "404 page not found\n",
                "client_error: client error: 404 (404 page not found)",
            ),
            (302, "", "bad_response: bad response code 302"),
            (200, "not json", "bad_response: expected ident at line 1 column 2"),
            (
                200,
                r#"{"status":"success"}"#,
                "bad_response: the answer has no data",
            ),
            (
                200,
                r#"{"status":"success","data":{"resultType":"string","result":[1,"foo"]}}"#,
                "Prometheus metric type not supported: string",
            ),
            (
                200,
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
                "bad_response: sample value \"x\" is not a number",
            ),
            (
                200,
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{}]}]}}"#,
                NO_HISTOGRAMS,
            ),
        ];
        for (status, body, want) in cases {
            assert_eq!(
                parse_answer(status, body.as_bytes()),
                Err(want.to_string()),
                "{body}"
            );
        }
    }

    #[test]
    fn configuration_errors() {
        assert_eq!(
            address(None, None),
            Err(
                "prometheus address is not configured: set provider.prometheus.address or the \
                 ARGO_ROLLOUTS_PROMETHEUS_ADDRESS environment variable"
                    .to_string()
            )
        );
        assert_eq!(address(Some(" "), Some("http://p:9090")), Ok("http://p:9090"));
        assert_eq!(
            address(Some("http://mine:9090"), Some("http://p:9090")),
            Ok("http://mine:9090")
        );
        assert_eq!(
            address(Some("prometheus:9090"), None),
            Err(
                "prometheus address \"prometheus:9090\" is not a URL such as http://prometheus:9090"
                    .to_string()
            )
        );
        assert_eq!(timeout(None), Ok(DEFAULT_TIMEOUT));
        assert_eq!(timeout(Some(0)), Ok(DEFAULT_TIMEOUT));
        assert_eq!(timeout(Some(5)), Ok(Duration::from_secs(5)));
        assert_eq!(
            timeout(Some(-1)),
            Err("prometheus timeout should not be negative".to_string())
        );
        let range = |start: &str, step: &str| PrometheusRangeQueryArgs {
            start: Some(start.into()),
            end: None,
            step: Some(step.into()),
        };
        assert!(
            range_params("up", &range("", "1m"))
                .unwrap_err()
                .starts_with("rangeQuery.start is required")
        );
        assert_eq!(
            range_params("up", &range("now()", "often")),
            Err("rangeQuery.step \"often\" is not a duration such as 30s or 1m".to_string())
        );
        let err = range_params("up", &range("now() -", "1m")).unwrap_err();
        assert!(
            err.starts_with("rangeQuery.start: could not evaluate time expression"),
            "{err}"
        );
        let params = range_params("up", &range("now() - duration(\"90s\")", "1m30s")).expect("params");
        assert_eq!(params[3], ("step", "90".to_string()));
        let start: f64 = params[1].1.parse().expect("seconds");
        let end: f64 = params[2].1.parse().expect("seconds");
        assert!((end - start - 90.0).abs() < 1.0, "{start} {end}");
    }

    #[test]
    fn metric_metadata_names_the_resolved_query() {
        let metric = PrometheusMetric {
            query: Some("sum(up{job=\"a\"})".into()),
            ..Default::default()
        };
        let want = BTreeMap::from([(RESOLVED_QUERY_KEY.to_string(), "sum(up{job=\"a\"})".to_string())]);
        assert_eq!(metric_metadata(&metric), want);
        assert!(metric_metadata(&PrometheusMetric::default()).is_empty());
    }

    #[test]
    fn basic_auth_and_headers() {
        let metric = PrometheusMetric {
            headers: Some(vec![WebMetricHeader {
                key: "X-Scope-OrgID".into(),
                value: "tenant_a".into(),
            }]),
            authentication: Some(Authentication {
                basic_auth: Some(BasicAuth {
                    username: Some("user".into()),
                    password: Some("pass".into()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            headers(&metric),
            vec![
                ("X-Scope-OrgID".to_string(), "tenant_a".to_string()),
                ("Authorization".to_string(), "Basic dXNlcjpwYXNz".to_string()),
            ]
        );
    }

    #[tokio::test]
    async fn no_address_at_all() {
        let metric = PrometheusMetric {
            query: Some("up".into()),
            ..Default::default()
        };
        let err = measure_with(&metric, None).await.unwrap_err();
        assert!(err.starts_with("prometheus address is not configured"), "{err}");
    }

    /// A real Prometheus (Debian's package) on a free local port, with an empty configuration; killed and its
    /// storage removed when dropped, whether the test passes or panics.
    struct PrometheusServer {
        child: Child,
        dir: PathBuf,
        address: String,
    }

    impl PrometheusServer {
        const BINARY: &str = "/usr/bin/prometheus";

        fn start() -> Self {
            assert!(
                Path::new(Self::BINARY).exists(),
                "{} is missing: install Debian's prometheus package (apt-get install prometheus)",
                Self::BINARY
            );
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let dir = std::env::temp_dir().join(format!("sluice-prometheus-{}-{port}", std::process::id()));
            std::fs::create_dir_all(dir.join("data")).expect("storage dir");
            std::fs::write(
                dir.join("prometheus.yml"),
                "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
            )
            .expect("config");
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
            let child = Command::new(Self::BINARY)
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log file"))
                .stderr(log)
                .spawn()
                .expect("start prometheus");
            Self {
                child,
                dir,
                address: format!("http://127.0.0.1:{port}"),
            }
        }

        async fn wait_ready(&mut self) {
            let url = format!("{}/-/ready", self.address);
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            loop {
                if let Ok(Some(exit)) = self.child.try_wait() {
                    let log = std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default();
                    panic!("prometheus exited ({exit}) before it was ready:\n{log}");
                }
                let call = Call {
                    method: Method::GET,
                    url: &url,
                    headers: Vec::new(),
                    body: None,
                    timeout: Duration::from_secs(2),
                    insecure: false,
                };
                if send(call).await.is_ok_and(|a| a.status.is_success()) {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "prometheus was not ready within 60s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }

        fn metric(&self, query: &str) -> PrometheusMetric {
            PrometheusMetric {
                address: Some(self.address.clone()),
                query: Some(query.into()),
                ..Default::default()
            }
        }
    }

    impl Drop for PrometheusServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    #[tokio::test]
    async fn against_a_real_prometheus() {
        let mut server = PrometheusServer::start();
        server.wait_ready().await;

        let r = measure_with(&server.metric("vector(0.97)"), None)
            .await
            .expect("vector");
        assert_eq!(
            (r.value.as_str(), &r.result),
            ("[0.97]", &ResultValue::from(vec![0.97]))
        );
        assert_eq!(
            evaluate(Some("result[0] >= 0.95"), None, &r.result),
            Ok(Phase::Successful)
        );
        assert_eq!(
            evaluate(Some("result[0] >= 0.99"), None, &r.result),
            Ok(Phase::Failed)
        );

        let r = measure_with(&server.metric("scalar(vector(0.5))"), None)
            .await
            .expect("scalar");
        assert_eq!((r.value.as_str(), &r.result), ("0.5", &ResultValue::from(0.5)));

        let r = measure_with(&server.metric("vector(1) unless vector(1)"), None)
            .await
            .expect("empty");
        assert_eq!(
            (r.value.as_str(), &r.result),
            ("[]", &ResultValue::from(Vec::<f64>::new()))
        );
        let err = evaluate(Some("result[0] >= 0.95"), None, &r.result).unwrap_err();
        assert!(
            err.ends_with("metric result is nil or empty: no data returned from the metric provider"),
            "{err}"
        );

        let r = measure_with(&server.metric("vector(NaN)"), None)
            .await
            .expect("NaN");
        assert_eq!(r.value, "[NaN]");
        assert_eq!(
            evaluate(Some("isNaN(result[0]) || result[0] >= 0.95"), None, &r.result),
            Ok(Phase::Successful)
        );

        let err = measure_with(&server.metric("sum(rate(x[1m]"), None)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("bad_data: ") && err.contains("parse error"),
            "{err}"
        );

        let err = measure_with(&server.metric("\"text\""), None).await.unwrap_err();
        assert_eq!(err, "Prometheus metric type not supported: string");

        let mut range = server.metric("vector(1)");
        range.range_query = Some(PrometheusRangeQueryArgs {
            start: Some("now() - duration(\"30s\")".into()),
            end: Some("now()".into()),
            step: Some("10s".into()),
        });
        let r = measure_with(&range, None).await.expect("range");
        let points = r.result.as_expr().as_array().map_or(0, <[_]>::len);
        assert!((3..=4).contains(&points), "{}", r.value);
        assert!(r.value.starts_with("[1,1,1"), "{}", r.value);
        assert_eq!(
            evaluate(Some("all(result, # == 1)"), None, &r.result),
            Ok(Phase::Successful)
        );

        // The address may come from the environment's fallback; headers and basic auth ride along.
        let mut fallback = server.metric("vector(2)");
        fallback.address = None;
        fallback.headers = Some(vec![WebMetricHeader {
            key: "X-Scope-OrgID".into(),
            value: "t".into(),
        }]);
        fallback.authentication = Some(Authentication {
            basic_auth: Some(BasicAuth {
                username: Some("u".into()),
                password: Some("p".into()),
            }),
            ..Default::default()
        });
        fallback.timeout = Some(5);
        let r = measure_with(&fallback, Some(&server.address))
            .await
            .expect("fallback address");
        assert_eq!(r.value, "[2]");

        let address = server.address.clone();
        drop(server);
        // Let the pooled keep-alive connections see the close.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let err = measure_with(
            &PrometheusMetric {
                query: Some("up".into()),
                ..Default::default()
            },
            Some(&address),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err,
            format!("Post \"{address}/api/v1/query\": tcp connect error: connection refused")
        );
    }
}
