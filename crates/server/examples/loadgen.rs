//! A load generator for inference servers: keep-alive HTTP/1.1 connections
//! to 127.0.0.1, each sending one request after another for a fixed time.
//!
//! ```text
//! cargo run --release -p model-persistence-server --example loadgen -- \
//!     --url http://127.0.0.1:8080/v2/models/fraud/infer --body row.json \
//!     --concurrency 1,16,64 --seconds 10 [--label ours]
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
}

fn parse_args() -> Result<Args, String> {
    let mut url = None;
    let mut body = None;
    let mut levels = vec![1, 16, 64];
    let mut seconds = 10.0;
    let mut warmup = 1.0;
    let mut label = "server".to_owned();
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
    Ok(Args {
        addr,
        path: format!("/{path}"),
        body: body.ok_or("--body is required")?,
        levels,
        seconds,
        warmup,
        label,
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

fn run_level(args: &Args, concurrency: usize, seconds: f64) -> Level {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (stop, path, body, addr) = (Arc::clone(&stop), args.path.clone(), args.body.clone(), args.addr);
            std::thread::spawn(move || {
                let mut level = Level {
                    latencies: Vec::with_capacity(1 << 16),
                    non_200: 0,
                    errors: 0,
                    versions: BTreeMap::new(),
                    elapsed: Duration::ZERO,
                };
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
    let mut all = Level {
        latencies: Vec::new(),
        non_200: 0,
        errors: 0,
        versions: BTreeMap::new(),
        elapsed: start.elapsed(),
    };
    for w in workers {
        if let Ok(l) = w.join() {
            all.latencies.extend(l.latencies);
            all.non_200 += l.non_200;
            all.errors += l.errors;
            for (v, n) in l.versions {
                *all.versions.entry(v).or_default() += n;
            }
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
