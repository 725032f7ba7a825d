//! The HTTP client the providers (and the operator's notifications) share: one pooled client that verifies TLS certificates and one that does not
//! (`insecure: true`), each built once per process, so that thousands of measurements a second reuse their
//! connections instead of opening (and TLS-handshaking) new ones.
//!
//! TLS is rustls on ring, chosen explicitly per client, so that nothing depends on a process-wide crypto provider
//! being installed.

use std::error::Error as StdError;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, USER_AGENT};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The largest answer read; a larger one is an error rather than a controller out of memory.
pub(crate) const MAX_BODY: usize = 64 << 20;

/// One request of a measurement.
pub struct Call<'a> {
    /// GET, POST or PUT.
    pub method: Method,
    /// Absolute http(s) URL, query included.
    pub url: &'a str,
    /// Headers in order; a later one replaces an earlier one of the same name, as Go's `Header.Set`.
    pub headers: Vec<(String, String)>,
    /// The body and its content type, if any.
    pub body: Option<(Bytes, Option<&'static str>)>,
    /// For the whole exchange: connecting, sending and reading the answer.
    pub timeout: Duration,
    /// Skip TLS certificate verification.
    pub insecure: bool,
}

/// The answer to a call.
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

/// Sends one request and reads the whole answer. Errors read as Go's `http.Client` errors do
/// (`Get "http://host/path": reason`), with the reason in plain words.
pub async fn send(call: Call<'_>) -> Result<Answer, String> {
    let failed = |reason: String| format!("{} \"{}\": {reason}", go_method(&call.method), call.url);
    // The URL standard's parser percent-encodes what a templated URL may hold (spaces, quotes) as Go's lenient
    // parser lets through; hyper's own parser would refuse it.
    let url = url::Url::parse(call.url).map_err(|e| failed(format!("invalid URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(failed(format!(
            "unsupported protocol scheme \"{}\"",
            url.scheme()
        )));
    }
    let uri: Uri = url
        .as_str()
        .parse()
        .map_err(|e| failed(format!("invalid URL: {e}")))?;
    let mut request = Request::builder().method(call.method.clone()).uri(uri);
    let headers = request
        .headers_mut()
        .ok_or_else(|| failed("invalid request".to_string()))?;
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("sluice/", env!("CARGO_PKG_VERSION"))),
    );
    for (key, value) in &call.headers {
        let name = HeaderName::from_bytes(key.trim().as_bytes())
            .map_err(|_| failed(format!("invalid header name \"{key}\"")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| failed(format!("invalid value for header \"{key}\"")))?;
        headers.insert(name, value);
    }
    let body = match &call.body {
        Some((bytes, content_type)) => {
            if let Some(content_type) = content_type {
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            }
            Full::new(bytes.clone())
        }
        None => Full::new(Bytes::new()),
    };
    let request = request
        .body(body)
        .map_err(|e| failed(format!("invalid request: {e}")))?;
    let client = client(call.insecure).map_err(&failed)?;
    let exchange = async {
        let response = client.request(request).await.map_err(|e| describe(&e))?;
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    format!("the answer is larger than {} MiB", MAX_BODY >> 20)
                } else {
                    format!("reading the answer: {}", describe(e.as_ref()))
                }
            })?;
        Ok::<_, String>(Answer {
            status,
            body: body.to_bytes(),
        })
    };
    match tokio::time::timeout(call.timeout, exchange).await {
        Ok(outcome) => outcome.map_err(failed),
        Err(_) => Err(failed(format!(
            "no answer within {} (timeout)",
            seconds(call.timeout)
        ))),
    }
}

/// A method as Go's errors spell it: "Get", "Post", "Put".
fn go_method(method: &Method) -> String {
    let name = method.as_str();
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_string() + &chars.as_str().to_ascii_lowercase(),
        None => String::new(),
    }
}

fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// An error and its causes in one line, with the usual operating-system errors in plain words; the client's own
/// "client error (Connect)" wrapper says nothing the causes do not.
fn describe(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(error);
    while let Some(e) = current {
        let text = match e.downcast_ref::<std::io::Error>().map(std::io::Error::kind) {
            Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
            Some(std::io::ErrorKind::ConnectionReset) => "connection reset by peer".to_string(),
            Some(std::io::ErrorKind::TimedOut) => "connection timed out".to_string(),
            _ => e.to_string(),
        };
        let generic = text.starts_with("client error (");
        if !generic && !text.is_empty() && parts.last().is_none_or(|last| !last.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        error.to_string()
    } else {
        parts.join(": ")
    }
}

/// The shared client, built on first use.
fn client(insecure: bool) -> Result<&'static HttpsClient, String> {
    static VERIFYING: OnceLock<Result<HttpsClient, String>> = OnceLock::new();
    static INSECURE: OnceLock<Result<HttpsClient, String>> = OnceLock::new();
    let cell = if insecure { &INSECURE } else { &VERIFYING };
    cell.get_or_init(|| build(insecure))
        .as_ref()
        .map_err(Clone::clone)
}

fn build(insecure: bool) -> Result<HttpsClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let tls = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        use rustls_platform_verifier::BuilderVerifierExt;
        builder
            .with_platform_verifier()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_no_client_auth()
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(64)
        .build(https))
}

/// `insecure: true`: any certificate is accepted (Go's `InsecureSkipVerify`); handshake signatures are still
/// checked, so the connection is encrypted, just not authenticated.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(url: &str, timeout: Duration) -> Call<'_> {
        Call {
            method: Method::GET,
            url,
            headers: Vec::new(),
            body: None,
            timeout,
            insecure: false,
        }
    }

    #[tokio::test]
    async fn connection_refused_names_the_address() {
        // A port that was free a moment ago: nothing listens on it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("http://127.0.0.1:{port}/api/v1/query");
        let err = send(get(&url, Duration::from_secs(5)))
            .await
            .err()
            .expect("refused");
        assert_eq!(
            err,
            format!("Get \"{url}\": tcp connect error: connection refused")
        );
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/slow", listener.local_addr().expect("addr"));
        let hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let err = send(get(&url, Duration::from_millis(300)))
            .await
            .err()
            .expect("timeout");
        assert_eq!(err, format!("Get \"{url}\": no answer within 0.300s (timeout)"));
        hold.abort();
    }

    #[tokio::test]
    async fn malformed_calls_are_refused_before_sending() {
        let t = Duration::from_secs(1);
        let err = send(get("ftp://example.com/x", t)).await.err().expect("scheme");
        assert_eq!(
            err,
            "Get \"ftp://example.com/x\": unsupported protocol scheme \"ftp\""
        );
        let err = send(get("not a url", t)).await.err().expect("url");
        assert!(err.starts_with("Get \"not a url\": invalid URL"), "{err}");
        let mut call = get("http://127.0.0.1:1/", t);
        call.headers.push(("bad name".into(), "x".into()));
        assert_eq!(
            send(call).await.err().expect("header"),
            "Get \"http://127.0.0.1:1/\": invalid header name \"bad name\""
        );
        let mut call = get("http://127.0.0.1:1/", t);
        call.method = Method::POST;
        call.headers.push(("X-Line".into(), "a\nb".into()));
        assert_eq!(
            send(call).await.err().expect("value"),
            "Post \"http://127.0.0.1:1/\": invalid value for header \"X-Line\""
        );
    }
}
