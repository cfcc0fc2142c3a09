//! A load generator for inference servers: keep-alive HTTP/1.1 connections
//! to 127.0.0.1, each sending one request after another for a fixed time;
//! with `--grpc`, HTTP/2 connections each making one `ModelInfer` call after
//! another (the JSON body's inputs sent as raw tensors, as tritonclient
//! sends them).
//!
//! ```text
//! cargo run --release -p model-persistence-server --example loadgen -- \
//!     --url http://127.0.0.1:8080/v2/models/fraud/infer --body row.json \
//!     --concurrency 1,16,64 --seconds 10 [--label ours] [--grpc]
//! ```
//!
//! Prints one JSON object per concurrency level: requests per second, the
//! latency median and 99th percentile, the non-200 count, and the versions
//! that answered. Only 127.0.0.1 is accepted, and every run stops by itself.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    addr: SocketAddr,
    path: String,
    body: Vec<u8>,
    levels: Vec<usize>,
    seconds: f64,
    warmup: f64,
    label: String,
    /// The gRPC call's message, framed, when `--grpc`.
    grpc: Option<Vec<u8>>,
}

/// The `ModelInfer` message for a REST inference body (its model named by
/// the URL's path), framed as a gRPC call carries it.
fn grpc_call(path: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    use model_persistence_server::grpc::proto::{model_infer_request::InferInputTensor, ModelInferRequest};
    use prost::Message;
    let json: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("--body: {e}"))?;
    let model = path
        .trim_start_matches("/v2/models/")
        .split('/')
        .next()
        .ok_or("--url names no model")?;
    let mut request = ModelInferRequest {
        model_name: model.to_owned(),
        ..ModelInferRequest::default()
    };
    for input in json["inputs"].as_array().ok_or("--body has no inputs")? {
        let mut values = Vec::new();
        fn flat(v: &serde_json::Value, out: &mut Vec<f64>) {
            match v {
                serde_json::Value::Array(items) => items.iter().for_each(|i| flat(i, out)),
                other => out.push(other.as_f64().unwrap_or(f64::NAN)),
            }
        }
        flat(&input["data"], &mut values);
        request.inputs.push(InferInputTensor {
            name: input["name"].as_str().unwrap_or("input").to_owned(),
            datatype: "FP64".into(),
            shape: input["shape"]
                .as_array()
                .map(|s| s.iter().filter_map(serde_json::Value::as_i64).collect())
                .unwrap_or_default(),
            ..InferInputTensor::default()
        });
        request
            .raw_input_contents
            .push(values.iter().flat_map(|v| v.to_le_bytes()).collect());
    }
    let message = request.encode_to_vec();
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(message.len()).map_err(|e| e.to_string())?.to_be_bytes());
    framed.extend_from_slice(&message);
    Ok(framed)
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut body = None;
    let mut levels = vec![1, 16, 64];
    let mut seconds = 10.0;
    let mut warmup = 1.0;
    let mut label = "server".to_owned();
    let mut grpc = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--url" => url = Some(value()?),
            "--body" => body = Some(std::fs::read(value()?).map_err(|e| format!("--body: {e}"))?),
            "--concurrency" => {
                levels = value()?
                    .split(',')
                    .map(|c| c.trim().parse().map_err(|e| format!("--concurrency: {e}")))
                    .collect::<Result<_, _>>()?;
            }
            "--seconds" => seconds = value()?.parse().map_err(|e| format!("--seconds: {e}"))?,
            "--warmup" => warmup = value()?.parse().map_err(|e| format!("--warmup: {e}"))?,
            "--label" => label = value()?,
            "--grpc" => grpc = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let url = url.ok_or("--url is required")?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://127.0.0.1:PORT/...")?;
    let (host, path) = rest.split_once('/').ok_or("--url needs a path")?;
    let addr: SocketAddr = host.parse().map_err(|e| format!("--url host: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err("only 127.0.0.1 is load-tested".into());
    }
    if !(0.1..=600.0).contains(&seconds) {
        return Err("--seconds must be within 0.1 and 600".into());
    }
    let path = format!("/{path}");
    let body = body.ok_or("--body is required")?;
    let grpc = if grpc { Some(grpc_call(&path, &body)?) } else { None };
    Ok(Args {
        addr,
        path,
        body,
        levels,
        seconds,
        warmup,
        label,
        grpc,
    })
}

/// One keep-alive connection.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    request: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr, path: &str, body: &[u8]) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
            request,
        })
    }

    /// Sends the request and reads the response: status and body.
    fn exchange(&mut self) -> std::io::Result<(u16, Vec<u8>)> {
        self.writer.write_all(&self.request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let (mut length, mut chunked) = (0usize, false);
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            } else if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
                let mut chunk = vec![0; n + 2];
                self.reader.read_exact(&mut chunk)?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            body.resize(length, 0);
            self.reader.read_exact(&mut body)?;
        }
        Ok((status, body))
    }
}

/// The version a response names, if any.
fn version_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let at = text.find("\"model_version\"")?;
    let rest = &text[at + 15..];
    let start = rest.find('"')? + 1;
    let end = start + rest[start..].find('"')?;
    Some(rest[start..end].to_owned())
}

struct Level {
    latencies: Vec<Duration>,
    non_200: u64,
    errors: u64,
    versions: BTreeMap<String, u64>,
    elapsed: Duration,
}

/// One gRPC call after another on one HTTP/2 connection per worker, on a
/// runtime of two threads.
impl Level {
    fn new(elapsed: Duration) -> Self {
        Level {
            latencies: Vec::with_capacity(1 << 16),
            non_200: 0,
            errors: 0,
            versions: BTreeMap::new(),
            elapsed,
        }
    }

    /// Adds a worker's counts to these.
    fn absorb(&mut self, other: Level) {
        self.latencies.extend(other.latencies);
        self.non_200 += other.non_200;
        self.errors += other.errors;
        for (v, n) in other.versions {
            *self.versions.entry(v).or_default() += n;
        }
    }
}

fn run_grpc_level(args: &Args, message: &[u8], concurrency: usize, seconds: f64) -> Level {
    use http_body_util::{BodyExt, Full};
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let message = axum::body::Bytes::copy_from_slice(message);
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let levels = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (addr, message) = (args.addr, message.clone());
            tasks.push(tokio::spawn(async move {
                let mut level = Level::new(Duration::ZERO);
                let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                    level.errors += 1;
                    return level;
                };
                let _ = stream.set_nodelay(true);
                let io = hyper_util::rt::TokioIo::new(stream);
                let Ok((mut send, conn)) =
                    hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await
                else {
                    level.errors += 1;
                    return level;
                };
                tokio::spawn(conn);
                while Instant::now() < deadline {
                    let request =
                        axum::http::Request::post(format!("http://{addr}/inference.GRPCInferenceService/ModelInfer"))
                            .header("content-type", "application/grpc")
                            .header("te", "trailers")
                            .body(Full::new(message.clone()))
                            .expect("a request");
                    let t = Instant::now();
                    match send.send_request(request).await {
                        Ok(response) => match response.into_body().collect().await {
                            Ok(collected) => {
                                level.latencies.push(t.elapsed());
                                let ok = collected
                                    .trailers()
                                    .and_then(|t| t.get("grpc-status"))
                                    .is_some_and(|s| s.as_bytes() == b"0");
                                if !ok {
                                    level.non_200 += 1;
                                }
                            }
                            Err(_) => level.errors += 1,
                        },
                        Err(_) => {
                            level.errors += 1;
                            break;
                        }
                    }
                }
                level
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            if let Ok(l) = t.await {
                out.push(l);
            }
        }
        out
    });
    let mut all = Level::new(start.elapsed());
    for l in levels {
        all.absorb(l);
    }
    all
}

fn run_level(args: &Args, concurrency: usize, seconds: f64) -> Level {
    if let Some(message) = &args.grpc {
        return run_grpc_level(args, message, concurrency, seconds);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (stop, path, body, addr) = (Arc::clone(&stop), args.path.clone(), args.body.clone(), args.addr);
            std::thread::spawn(move || {
                let mut level = Level::new(Duration::ZERO);
                let mut conn = None;
                while !stop.load(Ordering::Relaxed) {
                    if conn.is_none() {
                        conn = Conn::open(addr, &path, &body).ok();
                        if conn.is_none() {
                            level.errors += 1;
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    }
                    let Some(c) = conn.as_mut() else { continue };
                    let t = Instant::now();
                    match c.exchange() {
                        Ok((status, body)) => {
                            level.latencies.push(t.elapsed());
                            if status != 200 {
                                level.non_200 += 1;
                            }
                            if let Some(v) = version_of(&body) {
                                *level.versions.entry(v).or_default() += 1;
                            }
                        }
                        Err(_) => {
                            level.errors += 1;
                            conn = None;
                        }
                    }
                }
                level
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = Level::new(start.elapsed());
    for w in workers {
        if let Ok(l) = w.join() {
            all.absorb(l);
        }
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(2);
        }
    };
    for &c in &args.levels {
        if args.warmup > 0.0 {
            run_level(&args, c, args.warmup);
        }
        let mut level = run_level(&args, c, args.seconds);
        level.latencies.sort();
        let n = level.latencies.len();
        let rps = n as f64 / level.elapsed.as_secs_f64();
        let versions: Vec<String> = level.versions.iter().map(|(v, n)| format!("\"{v}\":{n}")).collect();
        println!(
            "{{\"label\":\"{}\",\"concurrency\":{c},\"requests\":{n},\"rps\":{rps:.1},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"non_200\":{},\"errors\":{},\"versions\":{{{}}}}}",
            args.label,
            percentile(&level.latencies, 0.50),
            percentile(&level.latencies, 0.99),
            level.non_200,
            level.errors,
            versions.join(",")
        );
    }
}
