//! The gate's statistics checked against statsmodels and scipy (from PyPI,
//! installed into target/venv by scripts/test.sh): McNemar's test, exact
//! and with the continuity-corrected chi-square, on counts around the
//! switch between the two and at the edges. One deliberate difference:
//! with as many discordant pairs each way, p = 1 here (as in R), where
//! statsmodels' continuity correction gives less.

use std::path::PathBuf;

use model_persistence_gate::McNemar;

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python");
    let py = std::env::var_os("MP_PYTHON").map_or(venv, PathBuf::from);
    let ok = std::process::Command::new(&py)
        .args(["-c", "import statsmodels, scipy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{} has no statsmodels and scipy: run scripts/test.sh (it installs them into target/venv), \
         or set MP_PYTHON to a Python that has them",
        py.display()
    );
    py
}

#[test]
fn mcnemar_p_values_match_statsmodels() {
    let counts: Vec<(u64, u64)> = vec![
        (0, 0),
        (1, 0),
        (3, 9),
        (12, 12),
        (20, 4),
        (24, 0),
        (13, 12), // 25 discordant: the chi-square from here
        (30, 30),
        (31, 30),
        (110, 10),
        (250, 240),
        (1_000, 900),
    ];
    let script = r#"
import json, sys
from statsmodels.stats.contingency_tables import mcnemar
out = []
for b, c in json.load(sys.stdin):
    exact = b + c < 25
    r = mcnemar([[0, b], [c, 0]], exact=exact, correction=True)
    out.append(float(r.pvalue))
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new(python())
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(&counts).expect("json").as_bytes())
            .expect("writes");
    }
    let out = child.wait_with_output().expect("python ends");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let theirs: Vec<f64> = serde_json::from_slice(&out.stdout).expect("json");
    for (&(b, c), want) in counts.iter().zip(theirs) {
        let ours = McNemar::from_counts(b, c);
        // With as many discordant pairs each way there is no difference to
        // correct: the statistic is 0 and p = 1, as R's mcnemar.test gives.
        // statsmodels squares |b − c| − 1 = −1 and says 0.897 for (30, 30).
        let want = if b == c { 1.0 } else { want.min(1.0) };
        assert!(ours.p_value <= 1.0, "({b}, {c}): a p-value above 1: {}", ours.p_value);
        assert!(
            (ours.p_value - want).abs() <= 1e-6 * want.max(1e-3),
            "({b}, {c}): ours {} (exact: {}), statsmodels {want}",
            ours.p_value,
            ours.exact
        );
    }
}

#[test]
fn a_p_value_is_never_above_one() {
    for n in 0..200 {
        for (b, c) in [(n, n), (n, n + 1), (n + 1, n)] {
            let p = McNemar::from_counts(b, c).p_value;
            assert!((0.0..=1.0).contains(&p), "({b}, {c}): {p}");
        }
    }
}
