//! The web provider: an HTTP request whose JSON answer (or the part of it that `jsonPath` selects) is the result.
//!
//! As upstream: the selection keeps its JSON type (`{$.data.ok}` on `true` is the bool `true`, on `"true"` the
//! string), numbers are Go floats, and the stored value is Go's `json.Marshal` of the selection (`true`,
//! `"true"`, `{"ok":true}`). `jsonPath` is written in the Kubernetes form (`{$.data}`, `{.data}`); it is read as
//! an RFC 9535 JSONPath.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use jsonpath_rust::JsonPath;
use sluice_crds::analysis::WebMetric;

use super::http::{Call, send};
use super::{Reading, ResultValue, go_json};

/// Request timeout when the metric sets none (upstream's).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The jsonPath used when the metric sets none: the whole answer.
pub const DEFAULT_JSON_PATH: &str = "{$}";

/// The longest value stored for a measurement; a whole HTML error page repeated in every kept measurement would
/// push the AnalysisRun past what the API server accepts.
const MAX_STORED_VALUE: usize = 2048;

/// Sends the request; Err is the measurement's error message.
pub async fn measure(metric: &WebMetric) -> Result<Reading, String> {
    if let Some(option) = refused_option(metric) {
        return Err(option);
    }
    let method = method(metric.method.as_deref())?;
    let body = body(metric, &method)?;
    let path = json_path(metric.json_path.as_deref())?;
    let mut headers: Vec<(String, String)> = metric
        .headers
        .iter()
        .flatten()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    if let Some(basic) = metric.authentication.as_ref().and_then(|a| a.basic_auth.as_ref()) {
        use base64::Engine;
        let user = basic.username.as_deref().unwrap_or_default();
        let password = basic.password.as_deref().unwrap_or_default();
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.push(("Authorization".to_string(), format!("Basic {token}")));
    }
    let timeout = match metric.timeout_seconds {
        Some(s) if s > 0 => Duration::from_secs(s.unsigned_abs()),
        _ => DEFAULT_TIMEOUT,
    };
    let answer = send(Call {
        method,
        url: metric.url.trim(),
        headers,
        body,
        timeout,
        insecure: metric.insecure.unwrap_or(false),
    })
    .await?;
    if !answer.status.is_success() {
        return Err(format!(
            "received non 2xx response code: {}",
            answer.status.as_u16()
        ));
    }
    read_answer(&answer.body, &path)
}

/// The option of the metric that this controller cannot honour, in words for a message; None when it can send
/// the request.
pub fn refused_option(metric: &WebMetric) -> Option<String> {
    method(metric.method.as_deref())
        .err()
        .or_else(|| super::refused_oauth2(metric.authentication.as_ref()))
}

fn method(method: Option<&str>) -> Result<Method, String> {
    match method
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("GET")
        .to_ascii_uppercase()
        .as_str()
    {
        "GET" => Ok(Method::GET),
        "POST" => Ok(Method::POST),
        "PUT" => Ok(Method::PUT),
        other => Err(format!(
            "method \"{other}\" is not supported: use GET, POST or PUT"
        )),
    }
}

fn body(metric: &WebMetric, method: &Method) -> Result<Option<(Bytes, Option<&'static str>)>, String> {
    let text = metric.body.as_deref().filter(|b| !b.is_empty());
    let json = metric.json_body.as_ref();
    if text.is_some() && json.is_some() {
        return Err("use either Body or JSONBody; both cannot exists for WebMetric payload".to_string());
    }
    if (text.is_some() || json.is_some()) && *method == Method::GET {
        return Err("Body/JSONBody can only be used with POST or PUT WebMetric Method types".to_string());
    }
    if let Some(text) = text {
        return Ok(Some((Bytes::from(text.to_string()), None)));
    }
    match json {
        Some(json) => {
            let bytes =
                serde_json::to_vec(json).map_err(|e| format!("jsonBody could not be written: {e}"))?;
            Ok(Some((Bytes::from(bytes), Some("application/json"))))
        }
        None => Ok(None),
    }
}

/// A Kubernetes-style `{...}` JSONPath as an RFC 9535 path, checked once before the request is sent.
fn json_path(k8s: Option<&str>) -> Result<String, String> {
    let written = k8s
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_JSON_PATH);
    let inner = written
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .map(str::trim)
        .filter(|p| !p.is_empty() && !p.contains("}{"))
        .ok_or_else(|| {
            format!("jsonPath \"{written}\" must be one {{...}} expression, such as {{$.data.ok}}")
        })?;
    let path = if inner.starts_with('$') {
        inner.to_string()
    } else if inner.starts_with('.') || inner.starts_with('[') {
        format!("${inner}")
    } else {
        format!("$.{inner}")
    };
    serde_json::Value::Null
        .query(&path)
        .map_err(|e| format!("jsonPath \"{written}\" is invalid: {}", one_line(&e.to_string())))?;
    Ok(path)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The result and value of a 2xx answer. A body that is not JSON is the result as a string, so that a condition
/// such as `result == 'It worked!'` reads it (upstream passes such a body without evaluating the conditions).
fn read_answer(body: &[u8], path: &str) -> Result<Reading, String> {
    let Ok(document) = serde_json::from_slice::<serde_json::Value>(body) else {
        let text = String::from_utf8_lossy(body).into_owned();
        return Ok(Reading {
            value: stored(&text),
            result: ResultValue::string(text),
            metadata: BTreeMap::new(),
        });
    };
    let selected = document
        .query(path)
        .map_err(|e| format!("Could not find JSONPath in body: {}", one_line(&e.to_string())))?;
    let Some(first) = selected.first() else {
        return Err(format!("Could not find JSONPath in body: {path} is not found"));
    };
    Ok(Reading {
        result: ResultValue::from(*first),
        value: stored(&go_json(first)),
        metadata: BTreeMap::new(),
    })
}

fn stored(value: &str) -> String {
    if value.len() <= MAX_STORED_VALUE {
        return value.to_string();
    }
    let mut end = MAX_STORED_VALUE;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &value[..end])
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Bytes as AxumBytes;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{any, get};
    use sluice_crds::analysis::{Authentication, BasicAuth, WebMetricHeader};

    use super::*;
    use crate::Phase;
    use crate::condition::evaluate;

    const DOCUMENT: &str = r#"{"data": {"ok": true, "successPercent": 0.95}, "results": {"ok": "true"},
        "Status": 999, "major": "1", "items": [{"name": "a", "value": 1.5}, {"name": "b", "value": 2}],
        "html": "<b>&</b>"}"#;

    async fn echo(method: axum::http::Method, headers: HeaderMap, body: AxumBytes) -> String {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        serde_json::json!({
            "method": method.as_str(),
            "contentType": header("content-type"),
            "tenant": header("x-tenant"),
            "authorization": header("authorization"),
            "body": String::from_utf8_lossy(&body),
        })
        .to_string()
    }

    async fn serve() -> SocketAddr {
        let app = Router::new()
            .route(
                "/json",
                get(|| async { ([("content-type", "application/json")], DOCUMENT) }),
            )
            .route("/text", get(|| async { "It worked!" }))
            .route("/big", get(|| async { "x".repeat(5000) }))
            .route(
                "/fail",
                get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
            )
            .route(
                "/redirect",
                get(|| async { (StatusCode::MULTIPLE_CHOICES, "pick one") }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/echo", any(echo));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    fn metric(addr: SocketAddr, path: &str, json_path: Option<&str>) -> WebMetric {
        WebMetric {
            url: format!("http://{addr}{path}"),
            json_path: json_path.map(str::to_string),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn selections_keep_their_json_type() {
        let addr = serve().await;
        let cases: Vec<(Option<&str>, &str, &str)> = vec![
            (Some("{$.data.ok}"), "true", "result == true"),
            (Some("{.data.ok}"), "true", "result"),
            (Some("{$.results.ok}"), "\"true\"", "result == 'true'"),
            (
                Some("{$.data}"),
                r#"{"ok":true,"successPercent":0.95}"#,
                "result.ok && result.successPercent >= 0.90",
            ),
            (Some("{$.Status}"), "999", "result == 999 && asInt(result) == 999"),
            (Some("{$.major}"), "\"1\"", "result == '1'"),
            (Some("{$.items[1].value}"), "2", "asFloat(result) == 2"),
            (Some("{$.items[*].name}"), "\"a\"", "result == 'a'"),
            (Some("{$.items[?(@.value > 1.9)].name}"), "\"b\"", "result == 'b'"),
            (
                Some("{ $.html }"),
                r#""\u003cb\u003e\u0026\u003c/b\u003e""#,
                "result == '<b>&</b>'",
            ),
            (None, "", "result.Status == 999 && result.data.ok"),
        ];
        for (json_path, want_value, condition) in cases {
            let r = measure(&metric(addr, "/json", json_path))
                .await
                .expect("measured");
            if json_path.is_some() {
                assert_eq!(r.value, want_value, "{json_path:?}");
            } else {
                assert!(r.value.starts_with(r#"{"Status":999,"data":"#), "{}", r.value);
            }
            assert_eq!(
                evaluate(Some(condition), None, &r.result),
                Ok(Phase::Successful),
                "{json_path:?}"
            );
        }
    }

    #[tokio::test]
    async fn upstream_web_conditions() {
        let addr = serve().await;
        let r = measure(&metric(addr, "/json", Some("{$}")))
            .await
            .expect("measured");
        // analysistemplate-web-background-inconclusive.yaml: neither condition holds → Inconclusive.
        assert_eq!(
            evaluate(
                Some("result.Status == 998"),
                Some("result.Status == -1"),
                &r.result
            ),
            Ok(Phase::Inconclusive)
        );
        assert_eq!(
            evaluate(
                Some("result.Status == 999"),
                Some("result.Status == -1"),
                &r.result
            ),
            Ok(Phase::Successful)
        );
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_a_string() {
        let addr = serve().await;
        let r = measure(&metric(addr, "/text", Some("{$.anything}")))
            .await
            .expect("measured");
        assert_eq!(r.value, "It worked!");
        assert_eq!(
            evaluate(Some("result == 'It worked!'"), None, &r.result),
            Ok(Phase::Successful)
        );
        assert_eq!(
            evaluate(Some("result == 'It failed'"), None, &r.result),
            Ok(Phase::Failed)
        );
        let r = measure(&metric(addr, "/big", None)).await.expect("measured");
        assert_eq!(r.value.len(), MAX_STORED_VALUE + 3);
        assert_eq!(r.result.as_expr().as_string().map(str::len), Some(5000));
    }

    #[tokio::test]
    async fn failures() {
        let addr = serve().await;
        let err = measure(&metric(addr, "/fail", None)).await.unwrap_err();
        assert_eq!(err, "received non 2xx response code: 500");
        let err = measure(&metric(addr, "/redirect", None)).await.unwrap_err();
        assert_eq!(err, "received non 2xx response code: 300");
        let err = measure(&metric(addr, "/json", Some("{$.data.missing}")))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            "Could not find JSONPath in body: $.data.missing is not found"
        );
        let mut slow = metric(addr, "/slow", None);
        slow.timeout_seconds = Some(1);
        let err = measure(&slow).await.unwrap_err();
        assert_eq!(
            err,
            format!("Get \"http://{addr}/slow\": no answer within 1s (timeout)")
        );
        let err = measure(&WebMetric {
            url: "bad://url.com".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert_eq!(err, "Get \"bad://url.com\": unsupported protocol scheme \"bad\"");
    }

    #[tokio::test]
    async fn methods_bodies_and_headers() {
        let addr = serve().await;
        let mut post = metric(addr, "/echo", None);
        post.method = Some("POST".into());
        post.json_body = Some(serde_json::json!({"service": "canary", "n": 1}));
        post.headers = Some(vec![WebMetricHeader {
            key: "X-Tenant".into(),
            value: "team-a".into(),
        }]);
        post.authentication = Some(Authentication {
            basic_auth: Some(BasicAuth {
                username: Some("u".into()),
                password: Some("p".into()),
            }),
            ..Default::default()
        });
        let r = measure(&post).await.expect("post");
        let checks = "result.method == 'POST' && result.contentType == 'application/json' && \
                      result.tenant == 'team-a' && result.body == '{\"service\":\"canary\",\"n\":1}' && \
                      result.authorization == 'Basic dTpw'";
        assert_eq!(
            evaluate(Some(checks), None, &r.result),
            Ok(Phase::Successful),
            "{}",
            r.value
        );

        let mut put = metric(addr, "/echo", Some("{$.body}"));
        put.method = Some("put".into());
        put.body = Some("plain text".into());
        let r = measure(&put).await.expect("put");
        assert_eq!(r.value, "\"plain text\"");

        let r = measure(&metric(addr, "/echo", Some("{$.method}")))
            .await
            .expect("get");
        assert_eq!(r.value, "\"GET\"");

        let mut both = post.clone();
        both.body = Some("x".into());
        assert_eq!(
            measure(&both).await.unwrap_err(),
            "use either Body or JSONBody; both cannot exists for WebMetric payload"
        );
        let mut get_with_body = metric(addr, "/echo", None);
        get_with_body.body = Some("x".into());
        assert_eq!(
            measure(&get_with_body).await.unwrap_err(),
            "Body/JSONBody can only be used with POST or PUT WebMetric Method types"
        );
        let mut delete = metric(addr, "/echo", None);
        delete.method = Some("DELETE".into());
        assert_eq!(
            measure(&delete).await.unwrap_err(),
            "method \"DELETE\" is not supported: use GET, POST or PUT"
        );
    }

    #[test]
    fn json_path_translation() {
        let ok = [
            (None, "$"),
            (Some("{$}"), "$"),
            (Some("{$.data.ok}"), "$.data.ok"),
            (Some("{.data.ok}"), "$.data.ok"),
            (Some("{data.ok}"), "$.data.ok"),
            (Some("{['data']['ok']}"), "$['data']['ok']"),
            (Some(" { $.items[0] } "), "$.items[0]"),
            (Some("{$..value}"), "$..value"),
        ];
        for (k8s, want) in ok {
            assert_eq!(json_path(k8s), Ok(want.to_string()), "{k8s:?}");
        }
        assert_eq!(
            json_path(Some("$.data")),
            Err("jsonPath \"$.data\" must be one {...} expression, such as {$.data.ok}".to_string())
        );
        assert!(json_path(Some("{.a}{.b}")).is_err());
        let err = json_path(Some("{$.data[}")).unwrap_err();
        assert!(
            err.starts_with("jsonPath \"{$.data[}\" is invalid: ") && !err.contains('\n'),
            "{err}"
        );
    }

    /// `insecure: true` talks to a server whose certificate no one vouches for; without it the handshake fails.
    #[tokio::test]
    async fn insecure_skips_certificate_verification() {
        use hyper::server::conn::http1;
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("protocols")
                .with_no_client_auth()
                .with_single_cert(vec![certified.cert.der().clone()], key)
                .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = service_fn(|_request| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            Bytes::from_static(br#"{"secure": "enough"}"#),
                        )))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        let mut web = WebMetric {
            url: format!("https://localhost:{port}/"),
            json_path: Some("{$.secure}".into()),
            insecure: Some(true),
            ..Default::default()
        };
        let r = measure(&web).await.expect("insecure");
        assert_eq!(r.value, "\"enough\"");
        web.insecure = None;
        let err = measure(&web).await.unwrap_err();
        assert!(
            err.starts_with(&format!("Get \"https://localhost:{port}/\": ")) && err.contains("certificate"),
            "{err}"
        );
    }
}
