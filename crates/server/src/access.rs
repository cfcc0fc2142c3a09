//! Who may call what: bearer tokens with scopes, checked before a request's
//! body is read, with the same rules on REST and gRPC.
//!
//! A token is configured by its name, its scopes and its secret: the
//! SHA-256 of the token (`sha256`, hex), or the token itself in an
//! environment variable (`env`) or a file (`file`), hashed when the server
//! starts. The server keeps only digests; a presented token is hashed and
//! compared with every digest in constant time, and is never logged. A
//! client certificate verified by `tls.client_ca` authenticates as the token
//! whose name is its subject's common name (or one of its DNS names).
//!
//! | route | scope |
//! |---|---|
//! | `/v2/health/live`, `/v2/health/ready`, `/v2/models/{name}[/versions/{v}]/ready`; gRPC `ServerLive`, `ServerReady`, `ModelReady` | none (probes) |
//! | `/metrics` | none with `open_metrics`, else `read` |
//! | `POST .../infer`; gRPC `ModelInfer` | `infer` |
//! | `POST /v2/models/{name}/outcomes` | `outcomes` |
//! | `/v2/repository/...`; gRPC `Repository*` | `admin` |
//! | everything else: `/v2`, metadata, `GET .../outcomes`, `/`, `/models/{name}` | `read` |
//!
//! `admin` includes every other scope. No token, or one that matches none,
//! is 401 with `WWW-Authenticate: Bearer` (gRPC `UNAUTHENTICATED`); a
//! token without the scope is 403 (`PERMISSION_DENIED`); both with the
//! protocol's error body.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::hosting::AppState;

/// What a token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Predictions: `.../infer`, gRPC `ModelInfer`.
    Infer,
    /// Reporting outcomes: `POST .../outcomes` (which may move an alias
    /// through a guardrail or an A/B decision).
    Outcomes,
    /// Reading: server and model metadata, live metrics, the model pages,
    /// `/metrics`.
    Read,
    /// The repository extension, and every other scope.
    Admin,
}

impl Scope {
    fn name(self) -> &'static str {
        match self {
            Scope::Infer => "infer",
            Scope::Outcomes => "outcomes",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

/// One token (`[[token]]` in the serve config or a `--tokens` file): its
/// name, its scopes and exactly one source of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who the token is: recorded as the actor of the alias moves its
    /// requests cause, and matched against client certificates.
    pub name: String,
    /// The token's SHA-256, in hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// An environment variable holding the token itself.
    #[serde(default)]
    pub env: Option<String>,
    /// A file holding the token itself (surrounding whitespace ignored).
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// What it allows.
    pub scopes: Vec<Scope>,
}

/// A `--tokens` file: `[[token]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokensFile {
    /// The tokens.
    #[serde(default)]
    pub token: Vec<TokenConfig>,
}

impl TokensFile {
    /// Reads and parses a `--tokens` file.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the file for one that cannot be read or parsed.
    pub fn read(path: &std::path::Path) -> Result<Vec<TokenConfig>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read the tokens file {}: {e}", path.display())))?;
        let file: TokensFile =
            toml::from_str(&text).map_err(|e| Error::config(format!("the tokens file {}: {e}", path.display())))?;
        Ok(file.token)
    }
}

#[derive(Debug)]
struct Token {
    name: Arc<str>,
    /// None: only a client certificate authenticates as it.
    digest: Option<[u8; 32]>,
    scopes: Vec<Scope>,
}

impl Token {
    fn allows(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|&s| s == scope || s == Scope::Admin)
    }
}

/// The server's access rules: the tokens, and whether `/metrics` is open.
#[derive(Debug)]
pub(crate) struct Access {
    tokens: Vec<Token>,
    open_metrics: bool,
}

/// Who made a request: the name of the token (or client certificate) it
/// presented. Handlers find it in the request's extensions when access
/// control is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Caller(pub(crate) Arc<str>);

/// The names a verified client certificate carries (its subject's common
/// name, its DNS names), put in each request's extensions by the TLS layer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PeerNames(pub(crate) Vec<String>);

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

fn parse_hex(name: &str, hex: &str) -> Result<[u8; 32]> {
    let hex = hex.trim();
    let bad = || {
        Error::config(format!(
            "token {name:?}: sha256 must be 64 hexadecimal digits (the SHA-256 of the token, as `sha256sum` prints it)"
        ))
    };
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl Access {
    /// The rules of `tokens`; `None` when there are none (access control off).
    pub(crate) fn new(tokens: &[TokenConfig], open_metrics: bool, client_certs: bool) -> Result<Option<Self>> {
        if tokens.is_empty() {
            return Ok(None);
        }
        let mut built: Vec<Token> = Vec::with_capacity(tokens.len());
        for t in tokens {
            let name = t.name.trim();
            if name.is_empty() {
                return Err(Error::config("a token has an empty name"));
            }
            if built.iter().any(|b| &*b.name == name) {
                return Err(Error::config(format!("two tokens are named {name:?}")));
            }
            if t.scopes.is_empty() {
                return Err(Error::config(format!("token {name:?} has no scopes")));
            }
            let digest = match (&t.sha256, &t.env, &t.file) {
                (Some(hex), None, None) => Some(parse_hex(name, hex)?),
                (None, Some(var), None) => {
                    let value = std::env::var(var).map_err(|_| {
                        Error::config(format!("token {name:?}: the environment variable {var} is not set"))
                    })?;
                    Some(secret(name, value.trim())?)
                }
                (None, None, Some(path)) => {
                    let value = std::fs::read_to_string(path).map_err(|e| {
                        Error::config(format!("token {name:?}: cannot read {}: {e}", path.display()))
                    })?;
                    Some(secret(name, value.trim())?)
                }
                (None, None, None) if client_certs => None,
                (None, None, None) => {
                    return Err(Error::config(format!(
                        "token {name:?} has no secret: give sha256, env or file (or a client CA, for certificates named {name:?})"
                    )))
                }
                _ => {
                    return Err(Error::config(format!(
                        "token {name:?}: give one of sha256, env and file"
                    )))
                }
            };
            built.push(Token {
                name: name.into(),
                digest,
                scopes: t.scopes.clone(),
            });
        }
        Ok(Some(Access {
            tokens: built,
            open_metrics,
        }))
    }

    /// The token `presented` is, comparing its digest with every token's
    /// in constant time.
    fn by_secret(&self, presented: &[u8]) -> Option<&Token> {
        let wanted = digest(presented);
        let mut found = None;
        for token in &self.tokens {
            if let Some(d) = &token.digest {
                if constant_time_eq(d, &wanted) {
                    found = Some(token);
                }
            }
        }
        found
    }

    fn by_name(&self, names: &PeerNames) -> Option<&Token> {
        self.tokens
            .iter()
            .find(|t| names.0.iter().any(|n| n.as_str() == &*t.name))
    }

    /// The scope a request needs, or `None` for the open routes.
    fn required(&self, method: &Method, path: &str) -> Option<Scope> {
        if is_probe(path) {
            return None;
        }
        if let Some(call) = path.strip_prefix("/inference.GRPCInferenceService/") {
            return match call {
                "ModelInfer" => Some(Scope::Infer),
                c if c.starts_with("Repository") => Some(Scope::Admin),
                _ => Some(Scope::Read),
            };
        }
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
        match parts.as_slice() {
            ["metrics"] if self.open_metrics => None,
            ["v2", "models", _, "infer"] | ["v2", "models", _, "versions", _, "infer"] => Some(Scope::Infer),
            ["v2", "models", _, "outcomes"] if method == Method::POST => Some(Scope::Outcomes),
            ["v2", "repository", ..] => Some(Scope::Admin),
            _ => Some(Scope::Read),
        }
    }
}

/// Whether `path` is a probe's (liveness, readiness, a model's readiness,
/// on REST or gRPC): open to all, and never refused by a bound.
pub(crate) fn is_probe(path: &str) -> bool {
    if let Some(call) = path.strip_prefix("/inference.GRPCInferenceService/") {
        return matches!(call, "ServerLive" | "ServerReady" | "ModelReady");
    }
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    matches!(
        parts.as_slice(),
        ["v2", "health", "live" | "ready"] | ["v2", "models", _, "ready"] | ["v2", "models", _, "versions", _, "ready"]
    )
}

fn secret(name: &str, value: &str) -> Result<[u8; 32]> {
    if value.is_empty() {
        return Err(Error::config(format!("token {name:?} is empty")));
    }
    Ok(digest(value.as_bytes()))
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

/// The bearer token of `authorization: Bearer TOKEN` (the scheme in any case).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
        .filter(|t| !t.is_empty())
}

/// `app` behind [`authorize`], outside every layer it already has.
pub(crate) fn guard(app: axum::Router, state: Arc<AppState>) -> axum::Router {
    app.layer(axum::middleware::from_fn_with_state(state, authorize))
}

/// The middleware: lets a request through with its [`Caller`], or answers
/// 401/403 (`UNAUTHENTICATED`/`PERMISSION_DENIED`) before its body is read.
pub(crate) async fn authorize(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let Some(access) = state.access() else {
        return next.run(request).await;
    };
    let Some(needed) = access.required(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let by_cert = request
        .extensions()
        .get::<PeerNames>()
        .and_then(|names| access.by_name(names));
    let presented = bearer(request.headers());
    let token = match presented {
        Some(secret) => access.by_secret(secret),
        None => by_cert,
    };
    let grpc = crate::grpc::is_grpc(request.headers());
    let refusal = match token {
        None => Refusal::Unauthenticated {
            presented: presented.is_some(),
        },
        Some(t) if !t.allows(needed) => Refusal::Forbidden {
            name: Arc::clone(&t.name),
            needed,
        },
        Some(t) => {
            request.extensions_mut().insert(Caller(Arc::clone(&t.name)));
            return next.run(request).await;
        }
    };
    let reason = usize::from(matches!(refusal, Refusal::Forbidden { .. }));
    state.metrics.access_refused[usize::from(grpc)][reason].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A small body still coming is read (at most 64 KiB, for at most half
    // a second) before the refusal, so an HTTP/2 client gets the answer on
    // a stream that ended cleanly, not one reset while it was sending.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        axum::body::to_bytes(request.into_body(), 64 << 10),
    )
    .await;
    refusal.into_response(grpc)
}

enum Refusal {
    Unauthenticated { presented: bool },
    Forbidden { name: Arc<str>, needed: Scope },
}

impl Refusal {
    fn error(&self) -> crate::service::InferError {
        match self {
            Refusal::Unauthenticated { presented: false } => crate::service::InferError::unauthenticated(
                "this server requires a bearer token (authorization: Bearer TOKEN)",
            ),
            Refusal::Unauthenticated { presented: true } => {
                crate::service::InferError::unauthenticated("the bearer token is not valid here")
            }
            Refusal::Forbidden { name, needed } => crate::service::InferError::forbidden(format!(
                "token {name:?} does not have the {:?} scope this request needs",
                needed.name()
            )),
        }
    }

    fn into_response(self, grpc: bool) -> Response {
        let error = self.error();
        if grpc {
            return crate::grpc::status(error).into_http();
        }
        let status = match self {
            Refusal::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden { .. } => StatusCode::FORBIDDEN,
        };
        let body = serde_json::to_vec(&crate::protocol::ErrorBody { error: error.message }).unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Refusal::Unauthenticated { presented } = self {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(if presented {
                    r#"Bearer realm="model-persistence", error="invalid_token""#
                } else {
                    r#"Bearer realm="model-persistence""#
                }),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(open_metrics: bool) -> Access {
        let hex: String = digest(b"s3cret").iter().map(|b| format!("{b:02x}")).collect();
        Access::new(
            &[TokenConfig {
                name: "ci".into(),
                sha256: Some(hex),
                env: None,
                file: None,
                scopes: vec![Scope::Infer],
            }],
            open_metrics,
            false,
        )
        .expect("valid")
        .expect("on")
    }

    #[test]
    fn each_route_needs_its_scope() {
        let a = access(false);
        let get = Method::GET;
        let post = Method::POST;
        for (method, path, want) in [
            (&get, "/v2/health/live", None),
            (&get, "/v2/health/ready", None),
            (&get, "/v2/models/fraud/ready", None),
            (&get, "/v2/models/fraud/versions/1.0.0/ready", None),
            (&get, "/metrics", Some(Scope::Read)),
            (&get, "/v2", Some(Scope::Read)),
            (&get, "/v2/models/fraud", Some(Scope::Read)),
            (&get, "/v2/models/fraud/outcomes", Some(Scope::Read)),
            (&post, "/v2/models/fraud/outcomes", Some(Scope::Outcomes)),
            (&post, "/v2/models/fraud/infer", Some(Scope::Infer)),
            (&post, "/v2/models/fraud/versions/1.0.0/infer", Some(Scope::Infer)),
            (&post, "/v2/repository/index", Some(Scope::Admin)),
            (&post, "/v2/repository/models/fraud/load", Some(Scope::Admin)),
            (&get, "/", Some(Scope::Read)),
            (&get, "/models/fraud", Some(Scope::Read)),
            (&get, "/anything/else", Some(Scope::Read)),
            (&post, "/inference.GRPCInferenceService/ServerLive", None),
            (&post, "/inference.GRPCInferenceService/ModelReady", None),
            (&post, "/inference.GRPCInferenceService/ModelInfer", Some(Scope::Infer)),
            (
                &post,
                "/inference.GRPCInferenceService/ModelMetadata",
                Some(Scope::Read),
            ),
            (
                &post,
                "/inference.GRPCInferenceService/RepositoryModelLoad",
                Some(Scope::Admin),
            ),
        ] {
            assert_eq!(a.required(method, path), want, "{method} {path}");
        }
        assert_eq!(access(true).required(&get, "/metrics"), None);
    }

    #[test]
    fn tokens_match_by_digest_and_admin_includes_every_scope() {
        let a = access(false);
        assert_eq!(a.by_secret(b"s3cret").map(|t| &*t.name), Some("ci"));
        assert!(a.by_secret(b"s3cret ").is_none());
        assert!(a.by_secret(b"").is_none());
        let admin = Token {
            name: "root".into(),
            digest: None,
            scopes: vec![Scope::Admin],
        };
        assert!([Scope::Infer, Scope::Outcomes, Scope::Read, Scope::Admin]
            .iter()
            .all(|&s| admin.allows(s)));
        let infer = &a.tokens[0];
        assert!(infer.allows(Scope::Infer) && !infer.allows(Scope::Read) && !infer.allows(Scope::Admin));
    }

    #[test]
    fn bearer_headers_are_read_with_any_case_scheme() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn bad_token_configs_are_named() {
        let t = |sha256: Option<&str>, env: Option<&str>, scopes: Vec<Scope>| TokenConfig {
            name: "ci".into(),
            sha256: sha256.map(str::to_owned),
            env: env.map(str::to_owned),
            file: None,
            scopes,
        };
        let err = |tokens: &[TokenConfig]| Access::new(tokens, false, false).expect_err("refused").to_string();
        assert!(err(&[t(Some("abc"), None, vec![Scope::Read])]).contains("64 hexadecimal"));
        assert!(err(&[t(None, None, vec![Scope::Read])]).contains("no secret"));
        assert!(err(&[t(Some(&"0".repeat(64)), None, vec![])]).contains("no scopes"));
        assert!(err(&[t(Some(&"0".repeat(64)), Some("X"), vec![Scope::Read])]).contains("one of"));
        assert!(err(&[t(None, Some("MP_TEST_SURELY_UNSET_VAR"), vec![Scope::Read])]).contains("not set"));
        let two = [
            t(Some(&"0".repeat(64)), None, vec![Scope::Read]),
            t(Some(&"1".repeat(64)), None, vec![Scope::Read]),
        ];
        assert!(err(&two).contains("two tokens"));
        assert!(Access::new(&[], false, false).expect("none").is_none());
        assert!(Access::new(&[t(None, None, vec![Scope::Read])], false, true)
            .expect("cert only")
            .is_some());
    }
}
