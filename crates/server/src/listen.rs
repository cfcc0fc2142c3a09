//! The accept loop: one connection per client, HTTP/1 (REST) or HTTP/2
//! (gRPC, and REST clients that speak it), told apart by the connection's
//! first bytes, under three bounds, so slow or idle clients cannot take
//! what others need.
//!
//! - A connection's first byte must arrive within `header_timeout_ms`, and
//!   an HTTP/1 request's head within `header_timeout_ms` of the moment the
//!   server starts waiting for it (on a kept-alive connection, the end of
//!   the previous answer): hyper's header timer closes the connection
//!   otherwise. A client trickling its headers a byte at a time is cut off.
//!   An HTTP/2 connection is pinged when idle and closed when the pings go
//!   unanswered.
//! - A request's body must arrive within `body_timeout_ms`
//!   ([`body_deadline`]): past it the answer is 408 with the protocol's
//!   error body and the connection closes (a gRPC call: `DEADLINE_EXCEEDED`).
//!   A gRPC body is checked to be one whole, uncompressed message before
//!   the service reads it, so a malformed frame is `INVALID_ARGUMENT` and
//!   one over the limit `RESOURCE_EXHAUSTED` (tonic's own framing errors
//!   are `INTERNAL`).
//! - At most `max_connections` connections are open; one more is answered
//!   503 with `Retry-After` and closed at once, rather than queued without
//!   bound or left hanging.
//!
//! `axum::serve` has none of these (it sets no timer, so hyper's header
//! timeout never runs), which is why the server runs its own loop.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::config::ServeConfig;
use crate::hosting::AppState;

/// The bounds of [`serve`], from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) body_limit: usize,
    pub(crate) max_requests: usize,
    pub(crate) request_timeout: Duration,
}

impl Limits {
    pub(crate) fn of(config: &ServeConfig) -> Self {
        Limits {
            header_timeout: Duration::from_millis(config.header_timeout_ms),
            body_timeout: Duration::from_millis(config.body_timeout_ms),
            max_connections: config.max_connections,
            body_limit: config.body_limit,
            max_requests: config.max_requests,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        }
    }
}

/// What a client beyond `max_connections` reads before its connection closes.
fn busy() -> Vec<u8> {
    let body = r#"{"error":"the server has too many open connections: retry"}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting and waits for the connections' requests in flight.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    state: Arc<AppState>,
    tls: Option<crate::tls::Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let deadline = Deadline {
        limits,
        state: Arc::clone(&state),
        working: Arc::new(tokio::sync::Semaphore::new(limits.max_requests)),
    };
    // Outermost first: access control (before anything is read), the bound
    // on requests at once, the body's deadline, the request's deadline.
    let app = app
        .layer(axum::middleware::from_fn_with_state(deadline.clone(), request_deadline))
        .layer(axum::middleware::from_fn_with_state(deadline.clone(), body_deadline))
        .layer(axum::middleware::from_fn_with_state(deadline, bound_requests));
    let app = crate::access::guard(app, Arc::clone(&state));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_timeout)
        .keep_alive_timeout(limits.header_timeout);
    let builder = Arc::new(builder);
    // A replaced certificate is picked up within a second, for new handshakes.
    let reload = tls.clone().map(|tls| {
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let tls = tls.clone();
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
            }
        })
    });
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: the next accept may succeed.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            state.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&busy())).await;
            });
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let first_byte = limits.header_timeout;
        let tls = tls.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            // A connection that sends nothing is closed before a protocol
            // is chosen (which waits for the first bytes, with no timer).
            let mut byte = [0u8; 1];
            if !matches!(
                tokio::time::timeout(first_byte, stream.peek(&mut byte)).await,
                Ok(Ok(1..))
            ) {
                drop(permit);
                return;
            }
            match tls {
                None => drive(&builder, watcher, stream, app).await,
                Some(tls) => match tokio::time::timeout(first_byte, tls.acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let names = crate::tls::peer_names(&stream);
                        let app = tower::ServiceExt::map_request(app, move |mut r: Request<hyper::body::Incoming>| {
                            r.extensions_mut().insert(names.clone());
                            r
                        });
                        drive(&builder, watcher, stream, app).await;
                    }
                    _ => {
                        state.metrics.tls_failures.fetch_add(1, Ordering::Relaxed);
                    }
                },
            }
            drop(permit);
        });
    }
    drop(listener);
    if let Some(task) = reload {
        task.abort();
    }
    graceful.shutdown().await;
}

/// Serves one connection's requests with `app` until it closes (or the
/// server shuts down and its requests in flight are answered).
async fn drive<IO, S>(
    builder: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: IO,
    app: S,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response, Error = std::convert::Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let service = hyper_util::service::TowerToHyperService::new(app);
    let connection = builder.serve_connection(TokioIo::new(io), service).into_owned();
    let _ = watcher.watch(connection).await;
}

/// What [`body_deadline`], [`request_deadline`] and [`bound_requests`] need.
#[derive(Clone)]
struct Deadline {
    limits: Limits,
    state: Arc<AppState>,
    /// Permits for the requests handled at once.
    working: Arc<tokio::sync::Semaphore>,
}

/// A refusal with `Retry-After`, as REST's 503 or a gRPC status.
fn overloaded(grpc: bool, status: tonic::Status) -> Response {
    let mut response = if grpc {
        status.into_http()
    } else {
        let body = serde_json::to_vec(&crate::protocol::ErrorBody {
            error: status.message().to_owned(),
        })
        .unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// At most `max_requests` requests are handled at once: one more is
/// answered 503 with `Retry-After` (gRPC `UNAVAILABLE`) at once, not queued.
async fn bound_requests(State(deadline): State<Deadline>, request: Request, next: Next) -> Response {
    if crate::access::is_probe(request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(_permit) = Arc::clone(&deadline.working).try_acquire_owned() else {
        deadline.state.metrics.requests_refused.fetch_add(1, Ordering::Relaxed);
        let grpc = crate::grpc::is_grpc(request.headers());
        return overloaded(
            grpc,
            tonic::Status::unavailable(format!(
                "the server is handling {} requests, its bound: retry",
                deadline.limits.max_requests
            )),
        );
    };
    next.run(request).await
}

/// A request must be answered within `request_timeout` of its body's
/// arrival: past it the work is abandoned and the answer is 503
/// (`DEADLINE_EXCEEDED`).
async fn request_deadline(State(deadline): State<Deadline>, request: Request, next: Next) -> Response {
    let grpc = crate::grpc::is_grpc(request.headers());
    match tokio::time::timeout(deadline.limits.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            deadline
                .state
                .metrics
                .requests_timed_out
                .fetch_add(1, Ordering::Relaxed);
            overloaded(
                grpc,
                tonic::Status::deadline_exceeded(format!(
                    "the request took longer than the server's {} ms",
                    deadline.limits.request_timeout.as_millis()
                )),
            )
        }
    }
}

/// Reads a request's body within `body_timeout` (and `body_limit`), so the
/// handlers see it whole: a client that sends it slower is answered 408 and
/// its connection closed; one over the limit, 413.
async fn body_deadline(State(deadline): State<Deadline>, request: Request, next: Next) -> Response {
    let limits = deadline.limits;
    let (parts, body) = request.into_parts();
    let grpc = crate::grpc::is_grpc(&parts.headers);
    let read = tokio::time::timeout(limits.body_timeout, axum::body::to_bytes(body, limits.body_limit)).await;
    let (status, message) = match read {
        Ok(Ok(bytes)) => {
            if grpc {
                if let Err(refused) = crate::grpc::check_frame(&parts.headers, &bytes, limits.body_limit) {
                    return refused.into_http();
                }
            }
            return next.run(Request::from_parts(parts, Body::from(bytes))).await;
        }
        Ok(Err(e)) if mentions(&e, "length limit") => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is over the server's limit".to_owned(),
        ),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            format!("the request body could not be read: {e}"),
        ),
        Err(_) => {
            deadline.state.metrics.slow_bodies.fetch_add(1, Ordering::Relaxed);
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {} ms",
                    limits.body_timeout.as_millis()
                ),
            )
        }
    };
    deadline.state.count_refused_infer(parts.uri.path(), status.as_u16());
    if grpc {
        let refused = match status {
            StatusCode::PAYLOAD_TOO_LARGE => tonic::Status::resource_exhausted(message),
            StatusCode::REQUEST_TIMEOUT => tonic::Status::deadline_exceeded(message),
            _ => tonic::Status::invalid_argument(message),
        };
        return refused.into_http();
    }
    let body = serde_json::to_vec(&crate::protocol::ErrorBody { error: message }).unwrap_or_default();
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

fn mentions(e: &(dyn std::error::Error + 'static), what: &str) -> bool {
    let mut current = Some(e);
    while let Some(error) = current {
        if error.to_string().contains(what) {
            return true;
        }
        current = error.source();
    }
    false
}
