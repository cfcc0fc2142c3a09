//! Helpers shared by the CLI's tests.
#![allow(dead_code, unreachable_pub)]

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs `modelctl ARGS` in `dir` and waits for it.
pub fn modelctl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_modelctl"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("modelctl runs")
}

/// Runs `modelctl ARGS` in `dir`, requires success, returns its stdout.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = modelctl(dir, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Spawns `modelctl serve` as `cmd` says (stdout piped, stderr dropped) and
/// reads the address from its one "listening on" line.
pub fn spawn_serve(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("modelctl serve starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the listening line");
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .expect(&line)
        .to_owned();
    (child, addr)
}
