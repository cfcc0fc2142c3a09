//! TLS on the one port: curl and `tritonclient` (HTTP and gRPC, with ssl)
//! verify the certificate the test made; a certificate replaced on disk is
//! served to new handshakes without a restart while an open connection
//! keeps working; with a client CA, a client certificate named as a token
//! has that token's scopes and a client without one is refused.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use model_persistence_server::{ModelConfig, Scope, TlsConfig, TokenConfig};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use serde_json::Value;

use common::*;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "model-persistence test CA");
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("CA");
    Ca { cert, key }
}

/// A certificate signed by `ca`, written as NAME.pem and NAME.key in `dir`.
fn issue(ca: &Ca, dir: &Path, name: &str, cn: &str, client: bool) -> (PathBuf, PathBuf) {
    let sans = if client {
        vec![]
    } else {
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
    };
    let mut params = CertificateParams::new(sans).expect("params");
    params.distinguished_name.push(DnType::CommonName, cn);
    if client {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca.cert, &ca.key).expect("sign");
    let (c, k) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}.key")));
    std::fs::write(&c, cert.pem()).expect("write");
    std::fs::write(&k, key.serialize_pem()).expect("write");
    (c, k)
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs (Debian: apt-get install curl)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn url(addr: SocketAddr, path: &str) -> String {
    format!("https://localhost:{}{path}", addr.port())
}

/// The subject CN of the certificate a new handshake presents.
fn served_cn(addr: SocketAddr, ca: &Path) -> String {
    let (ok, out) = curl(&[
        "-v",
        "--cacert",
        ca.to_str().expect("utf-8"),
        &url(addr, "/v2/health/live"),
    ]);
    assert!(ok, "{out}");
    out.lines()
        .find_map(|l| l.split("subject: ").nth(1))
        .and_then(|s| s.split("CN=").nth(1))
        .map(|s| s.split(',').next().unwrap_or(s).trim().to_owned())
        .unwrap_or_else(|| panic!("no subject in curl's output:\n{out}"))
}

#[test]
fn tls_answers_verifying_clients_and_serves_a_replaced_certificate_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let ca = ca();
    let ca_pem = d.join("ca.pem");
    std::fs::write(&ca_pem, ca.cert.pem()).expect("write");
    let (cert, key) = issue(&ca, d, "server", "first", false);
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.tls = Some(TlsConfig {
        cert: cert.clone(),
        key: key.clone(),
        client_ca: None,
    });
    let server = start_tls(served, &reg, &ca_pem);
    let addr = server.addr;
    let cacert = ca_pem.to_str().expect("utf-8");

    // curl checks the certificate against the test's CA; plain HTTP is refused.
    let (ok, out) = curl(&["--cacert", cacert, &url(addr, "/v2/models/fraud")]);
    assert!(ok && out.contains("\"name\":\"fraud\""), "{out}");
    let (ok, _) = curl(&[&url(addr, "/v2/models/fraud")]);
    assert!(!ok, "curl accepted a certificate it cannot verify");
    assert!(!plain_http_answers(addr), "plain HTTP answered on the TLS port");

    // tritonclient over HTTPS and gRPC with TLS, on the one port.
    let py = python("tritonclient.grpc");
    let out = Command::new(&py)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/oip-tls-client.py"))
        .args([&format!("localhost:{}", addr.port()), cacert])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(seen["http"]["version"], "1.4.0", "{seen}");
    assert_eq!(seen["grpc"]["version"], "1.4.0", "{seen}");
    assert_eq!(seen["http"]["labels"], seen["grpc"]["labels"], "{seen}");

    // A kept-alive connection opened before the replacement.
    let mut before = KeptAlive::open(&py, addr, cacert);
    assert_eq!(served_cn(addr, &ca_pem), "first");
    // Replaced on disk (as cert-manager does): new handshakes get the new one.
    let (new_cert, new_key) = issue(&ca, d, "next", "second", false);
    std::fs::rename(&new_key, &key).expect("rename");
    std::fs::rename(&new_cert, &cert).expect("rename");
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cn(addr, &ca_pem) != "second" {
        assert!(Instant::now() < deadline, "the replaced certificate was never served");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        before.request(),
        "200 first",
        "the open connection was dropped or changed"
    );
    // A broken replacement is not taken: the last good pair stays.
    std::fs::write(&cert, "not a certificate").expect("write");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(served_cn(addr, &ca_pem), "second");
    drop(server);
}

/// Whether a plain HTTP request gets an HTTP answer (it must not, on a TLS port).
fn plain_http_answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = stream.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/")
}

/// A Python `http.client` HTTPS connection kept open in a child process:
/// each line written asks for `/v2/health/live` on the same connection and
/// reads back the status and the certificate's CN the connection began with.
struct KeptAlive {
    child: std::process::Child,
    out: std::io::BufReader<std::process::ChildStdout>,
}

impl KeptAlive {
    fn open(py: &Path, addr: SocketAddr, ca: &str) -> Self {
        let script = r#"
import http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = http.client.HTTPSConnection("localhost", int(sys.argv[1]), context=ctx)
c.request("GET", "/v2/health/live"); c.getresponse().read()
cn = dict(x[0] for x in c.sock.getpeercert()["subject"])["commonName"]
print("ready", flush=True)
for line in sys.stdin:
    c.request("GET", "/v2/health/live"); r = c.getresponse(); r.read()
    print(r.status, cn, flush=True)
"#;
        let mut child = Command::new(py)
            .args(["-c", script, &addr.port().to_string(), ca])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python runs");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("ready");
        assert_eq!(line.trim(), "ready");
        KeptAlive { child, out }
    }

    fn request(&mut self) -> String {
        use std::io::Write;
        writeln!(self.child.stdin.as_mut().expect("stdin")).expect("write");
        let mut line = String::new();
        std::io::BufRead::read_line(&mut self.out, &mut line).expect("answer");
        line.trim().to_owned()
    }
}

impl Drop for KeptAlive {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn mtls_client_certificates_named_as_tokens_have_their_scopes_and_clients_without_one_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let ca = ca();
    let ca_pem = d.join("ca.pem");
    std::fs::write(&ca_pem, ca.cert.pem()).expect("write");
    let (cert, key) = issue(&ca, d, "server", "server", false);
    let (client_cert, client_key) = issue(&ca, d, "client", "predictor", true);
    let (stranger_cert, stranger_key) = issue(&ca, d, "stranger", "nobody-configured", true);
    let (_dir, reg) = reference_registry();
    let mut served = config(vec![ModelConfig::reference("fraud@production")]);
    served.tls = Some(TlsConfig {
        cert,
        key,
        client_ca: Some(ca_pem.clone()),
    });
    served.token = vec![TokenConfig {
        name: "predictor".into(),
        sha256: None,
        env: None,
        file: None,
        scopes: vec![Scope::Infer],
    }];
    let server = start_tls(served, &reg, &ca_pem);
    let addr = server.addr;
    let cacert = ca_pem.to_str().expect("utf-8");
    let with = |cert: &Path, key: &Path, method: &str, path: &str| {
        let mut args = vec![
            "-o".to_owned(),
            "/dev/null".to_owned(),
            "-w".to_owned(),
            "%{http_code}".to_owned(),
            "--cacert".to_owned(),
            cacert.to_owned(),
            "--cert".to_owned(),
            cert.display().to_string(),
            "--key".to_owned(),
            key.display().to_string(),
            "-X".to_owned(),
            method.to_owned(),
            url(addr, path),
        ];
        if method == "POST" {
            args.extend([
                "-H".to_owned(),
                "content-type: application/json".to_owned(),
                "-d".to_owned(),
                r#"{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP64","data":[0.1,0.2,0.3,0.4]}]}"#.to_owned(),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(&args)
    };
    let (ok, code) = with(&client_cert, &client_key, "POST", "/v2/models/fraud/infer");
    assert!(
        ok && code == "200",
        "the predictor's certificate could not predict: {code}"
    );
    let (_, code) = with(&client_cert, &client_key, "GET", "/v2/models/fraud");
    assert_eq!(code, "403", "the predictor's certificate read metadata");
    let (_, code) = with(&stranger_cert, &stranger_key, "POST", "/v2/models/fraud/infer");
    assert_eq!(code, "401", "a certificate named as no token predicted");
    let (ok, out) = curl(&["--cacert", cacert, &url(addr, "/v2/health/live")]);
    assert!(!ok, "a client without a certificate was let in: {out}");
}

/// [`start`], waiting for readiness over TLS (curl with the test's CA).
/// Under mTLS the handshake without a client certificate is refused once
/// the server listens, which is as ready as this client can see.
fn start_tls(
    config: model_persistence_server::ServeConfig,
    reg: &model_persistence_versioning::Registry,
    ca: &Path,
) -> Running {
    let cacert = ca.to_str().expect("utf-8").to_owned();
    start_until(config, reg, move |addr| {
        let (_, out) = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &cacert,
            &url(addr, "/v2/health/ready"),
        ]);
        out.starts_with("200") || out.contains("alert") || out.contains("certificate required")
    })
}
