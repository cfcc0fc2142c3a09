//! Every example runs to completion (with fast settings where training is
//! slow) and its outcome is checked.

// Each example declares `mod common;`, so the shared file is compiled once
// per example here, as it is when the examples are built alone.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/ab_test.rs"]
mod ab_test;
#[allow(dead_code)]
#[path = "../examples/fraud_pipeline.rs"]
mod fraud_pipeline;
#[allow(dead_code)]
#[path = "../examples/live_ab.rs"]
mod live_ab;
#[cfg(feature = "onnx")]
#[allow(dead_code)]
#[path = "../examples/onnx_from_python.rs"]
mod onnx_from_python;
#[allow(dead_code)]
#[path = "../examples/quality_gate.rs"]
mod quality_gate;
#[allow(dead_code)]
#[path = "../examples/retrain_loop.rs"]
mod retrain_loop;
#[cfg(feature = "object-store")]
#[allow(dead_code)]
#[path = "../examples/s3_registry.rs"]
mod s3_registry;

use model_persistence::prelude::Version;

#[test]
fn fraud_pipeline_runs_the_whole_lifecycle() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = fraud_pipeline::run(dir.path(), 20).expect("the example runs");
    assert_eq!(summary.bundle_sizes.len(), 2);
    assert!(
        summary.frauds_caught >= 1,
        "no fraud among the shown predictions was caught"
    );
    assert!(summary.bundle_sizes.iter().all(|(_, size)| *size > 0));
    assert_eq!(
        summary.versions,
        [Version::new(1, 0, 0), Version::new(1, 1, 0), Version::new(1, 2, 0)]
    );
    assert_eq!(summary.best_by_f1, Version::new(1, 0, 0));
    assert_eq!(summary.served_before, Version::new(1, 0, 0));
    assert_eq!(
        summary.served_after,
        Version::new(1, 2, 0),
        "the server did not switch to the retrained version"
    );
}

#[test]
fn quality_gate_refuses_the_regression_and_tells_noise_from_signal() {
    let summary = quality_gate::run().expect("the example runs");
    assert!(
        !summary.candidate_passed,
        "0.89 against a 0.90 baseline must be refused"
    );
    assert!(!summary.tiny_gain_significant);
    assert!(summary.real_gain_significant);
}

#[test]
fn retrain_loop_detects_drift_retrains_swaps_refuses_and_rolls_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = retrain_loop::run(dir.path()).expect("the example runs");
    assert_eq!(summary.drifting, ["amount"]);
    assert_eq!(summary.retrained_version, Version::new(1, 1, 0));
    assert_eq!(summary.served_after_retrain, Version::new(1, 1, 0));
    assert!(summary.bad_model_refused);
    assert_eq!(summary.served_after_rollback, Version::new(1, 1, 0));
    assert!(summary.requests_answered > 1_000);
    assert_eq!(summary.request_errors, 0);
}

#[test]
fn live_ab_promotes_the_better_version_and_rolls_back_the_degraded_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = live_ab::run(dir.path(), 50_000).expect("the example runs");
    assert_eq!(
        summary.winner,
        Some(Version::new(1, 1, 0)),
        "the better variant is promoted"
    );
    assert!(
        summary.ab_outcomes >= 200,
        "not before both arms had their minimum samples"
    );
    assert_eq!(summary.rolled_back_to, Some(Version::new(1, 1, 0)));
    assert!(summary.guard_outcomes >= 200);
    assert_eq!(summary.production, Version::new(1, 1, 0));
}

#[test]
fn ab_test_splits_evenly_sticks_and_shadows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = ab_test::run(dir.path(), 4_000).expect("the example runs");
    assert!(summary.sticky);
    let total: u64 = summary.counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 8_000);
    let control = summary.counts[0].1 as f64 / total as f64;
    assert!((control - 0.5).abs() < 0.03, "{control}");
    assert!(summary.shadow_compared > 0);
    assert!(summary.shadow_disagreement < 0.2);
}

#[cfg(feature = "object-store")]
#[test]
fn s3_registry_runs_against_the_test_server() {
    let base = std::env::var("MP_TEST_S3_URL").unwrap_or_else(|_| {
        panic!(
            "MP_TEST_S3_URL is not set: run `bash scripts/test.sh`, or `eval \"$(scripts/s3-server.sh start)\"` first"
        )
    });
    let location = format!("{}/example-{}", base.trim_end_matches('/'), std::process::id());
    let summary = s3_registry::run(&location).expect("the example runs");
    assert_eq!(
        summary.versions,
        [Version::new(1, 0, 0), Version::new(1, 1, 0), Version::new(1, 2, 0)]
    );
    assert_eq!(summary.production, Version::new(1, 1, 0));
    assert_eq!(summary.damaged, 0);
    // A second run on the same prefix works too: three more versions, and
    // production moved from where it was to the best one.
    let again = s3_registry::run(&location).expect("the example runs again on the same prefix");
    assert_eq!(again.versions.len(), 6);
    assert_eq!(again.production, Version::new(1, 4, 0));
    assert_eq!(again.damaged, 0);
}

/// The `modelctl` binary of this build (`cargo test --workspace` builds it
/// for its own tests, beside this test's executable).
fn modelctl_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target directory");
    let bin = dir.join(format!("modelctl{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the workspace's tests (`cargo test --workspace`), which build it, \
         or `cargo build -p model-persistence-cli` first",
        bin.display()
    );
    bin
}

#[test]
fn readme_commands_run_in_order_on_what_the_main_job_leaves() {
    let readme = include_str!("../README.md");
    let start = readme
        .find("From the command line")
        .expect("the README's modelctl section");
    let block = readme[start..].split("```sh").nth(1).expect("a sh block");
    let block = block.split("```").next().expect("closed block");
    let dir = tempfile::tempdir().expect("temp dir");
    let job = dir.path().join("fraud_pipeline");
    fraud_pipeline::run(&job, 20).expect("the main job runs");
    let bin = modelctl_binary();
    let mut env = Vec::new();
    let mut ran = 0;
    for line in block.lines() {
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with("cargo ") {
            continue;
        }
        let line = line.replace("target/fraud_pipeline", &job.to_string_lossy());
        if let Some(assignment) = line.strip_prefix("export ") {
            let (k, v) = assignment.split_once('=').expect("NAME=VALUE");
            env.push((k.to_owned(), v.to_owned()));
            continue;
        }
        let mut words = line.split_whitespace();
        assert_eq!(words.next(), Some("modelctl"), "{line}");
        let out = std::process::Command::new(&bin)
            .args(words)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("modelctl runs");
        assert!(
            out.status.success(),
            "README command failed: {line}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} commands found in the README");
}

#[cfg(feature = "onnx")]
#[test]
fn onnx_from_python_serves_both_algorithms_behind_one_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let summary = onnx_from_python::run(dir.path(), 20).expect("the example runs");
    assert_eq!(summary.kinds_served[0], "linfa.random_forest.v3");
    if summary.onnx_published {
        assert_eq!(summary.kinds_served.last().map(String::as_str), Some("onnx.v1"));
    }
    assert_eq!(summary.ab_counts.len(), 2);
    assert!(
        summary.ab_counts.iter().all(|(_, n)| *n > 50),
        "{:?}",
        summary.ab_counts
    );
    assert!(
        summary
            .pipeline_runtime
            .starts_with("tract 0.23.9 before the trees, then flat forest"),
        "{}",
        summary.pipeline_runtime
    );
    assert_eq!(summary.pipeline_answers.len(), 3, "rows with NaN answered");
}
