//! The retrain loop in one process: a server answers requests on its own
//! thread; drift appears in the live inputs; the drift callback triggers a
//! retrain on fresh data; the gate checks it against production; it is
//! published and hot-swapped; then a deliberately bad model is refused by
//! the gate, a mistaken manual promotion is rolled back, and the server
//! follows the alias back.
//!
//! Run with `cargo run --release --example retrain_loop`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::{fraud_split, metrics, train_logistic, Result};
use linfa_logistic::FittedLogisticRegression;
use model_persistence::gate::{self, BaselineRule, Gate, Margin, Outcome, PublishRequest, Rule};
use model_persistence::prelude::*;
use model_persistence::serving::{DriftConfig, ModelServer, ReloadPolicy, Source};
use model_persistence::versioning::{Registry, VersionSpec};
use model_persistence_testkit::{shift_feature, FRAUD_FEATURES};
use ndarray::{s, Array1};

type Lr = FittedLogisticRegression<f64, usize>;

/// What happened, for the test that runs this example.
#[allow(dead_code)] // Read by tests/examples.rs, not by main.
pub(crate) struct Summary {
    pub(crate) drifting: Vec<String>,
    pub(crate) retrained_version: Version,
    pub(crate) served_after_retrain: Version,
    pub(crate) bad_model_refused: bool,
    pub(crate) served_after_rollback: Version,
    pub(crate) requests_answered: u64,
    pub(crate) request_errors: u64,
}

fn card_for(model: &Lr, data: &common::Split, m: [(&'static str, f64); 4], notes: &str) -> Result<ModelCard> {
    Ok(ModelCard::builder("fraud", model)
        .metrics(m)
        .feature_names(FRAUD_FEATURES)
        .classes(["legitimate", "fraud"])
        .training_data(data.train.records().view(), data.source.clone())
        .notes(notes)
        .build()?)
}

pub(crate) fn run(dir: &Path) -> Result<Summary> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let registry = Registry::create(dir)?;
    let gate = Gate::new([
        Rule::higher_is_better("accuracy").threshold(0.85),
        Rule::higher_is_better("f1")
            .threshold(0.5)
            .baseline(BaselineRule::MayRegress(Margin::Absolute(0.05))),
    ]);

    println!("🏁 Monitor → retrain → evaluate → serialise → version → hot-swap\n");
    let original = fraud_split(10_000, 42);
    let v1 = train_logistic(&original, 150)?;
    let m = metrics(&Predictor::predict(&v1, original.test_x.view()), &original.test_y)?;
    let outcome = gate::evaluate_and_publish(
        &gate,
        &registry,
        PublishRequest::new(&v1, &card_for(&v1, &original, m, "initial model")?, "production")
            .version(VersionSpec::Exact(Version::new(1, 0, 0))),
    )?;
    println!(
        "Initial model: {}",
        if matches!(outcome, Outcome::Published { .. }) {
            "published as 1.0.0 → production"
        } else {
            "refused"
        }
    );

    let (drift_tx, drift_rx) = mpsc::channel::<Vec<String>>();
    let server: ModelServer<Lr> = ModelServer::builder(Source::registry(registry.clone(), "fraud@production")?)
        .policy(ReloadPolicy::Interval(Duration::from_millis(20)))
        .drift(DriftConfig {
            window: 1_000,
            threshold: 0.2,
            sample_share: 1.0,
        })
        .on_drift(move |report| {
            let _ = drift_tx.send(report.drifting().iter().map(|s| s.to_string()).collect());
        })
        .start()?;
    println!(
        "Serving fraud@production v{} on a background thread...",
        server.status().version
    );

    // Live traffic: a day of transactions where, halfway, `amount` drifts upwards.
    let (x_live, _) = model_persistence_testkit::fraud_like(40_000, 0.1, 7);
    let mut x_live = x_live;
    let (mut head, mut tail) = x_live.view_mut().split_at(ndarray::Axis(0), 3_000);
    let _ = &mut head;
    let mut shifted = tail.to_owned();
    shift_feature(&mut shifted, 0, 1.5);
    tail.assign(&shifted);
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let traffic = {
        let (server, stop, answered, errors) = (
            server.clone(),
            Arc::clone(&stop),
            Arc::clone(&answered),
            Arc::clone(&errors),
        );
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let row = x_live.slice(s![i % x_live.nrows()..i % x_live.nrows() + 1, ..]);
                match server.predict(row) {
                    Ok(_) => answered.fetch_add(1, Ordering::Relaxed),
                    Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
                if i % 200 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };

    let drifting = drift_rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| "no drift was detected")?;
    println!("\n📈 Drift detected in the live inputs: {drifting:?} (PSI above 0.2 over the last 1,000 requests)");
    if let Some(report) = server.drift() {
        for f in report.features.iter().filter(|f| f.psi > 0.05) {
            println!("  {:<16} PSI {:.3}", f.name, f.psi);
        }
    }

    println!("\n🔁 Retraining on fresh data that reflects the shift...");
    let mut fresh = fraud_split(20_000, 43);
    let mut records = fresh.train.records().clone();
    shift_feature(&mut records, 0, 1.5);
    let targets: Array1<usize> = fresh.train.targets().clone();
    fresh.train = linfa::Dataset::new(records, targets).with_feature_names(FRAUD_FEATURES.to_vec());
    shift_feature(&mut fresh.test_x, 0, 1.5);
    let v2 = train_logistic(&fresh, 150)?;
    let m2 = metrics(&Predictor::predict(&v2, fresh.test_x.view()), &fresh.test_y)?;
    let outcome = gate::evaluate_and_publish(
        &gate,
        &registry,
        PublishRequest::new(
            &v2,
            &card_for(&v2, &fresh, m2, "retrained after drift in amount")?,
            "production",
        ),
    )?;
    println!("{}", outcome.report());
    let Outcome::Published { version, .. } = outcome else {
        return Err("the retrained model was refused".into());
    };
    let retrained_version = version.version.clone();
    println!("Published {retrained_version} and moved production; waiting for the server to swap...");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.status().version != retrained_version && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let served_after_retrain = server.status().version;
    println!(
        "🔄 Hot-swapped: now serving v{served_after_retrain}, no restart, {} requests answered so far",
        answered.load(Ordering::Relaxed)
    );

    println!("\n🧪 A deliberately bad model (trained on shuffled labels) meets the gate...");
    let mut bad_data = fraud_split(10_000, 44);
    let mut labels = bad_data.train.targets().to_vec();
    labels.rotate_left(1_234);
    bad_data.train = linfa::Dataset::new(bad_data.train.records().clone(), Array1::from(labels))
        .with_feature_names(FRAUD_FEATURES.to_vec());
    let bad = train_logistic(&bad_data, 150)?;
    let mb = metrics(&Predictor::predict(&bad, bad_data.test_x.view()), &bad_data.test_y)?;
    let outcome = gate::evaluate_and_publish(
        &gate,
        &registry,
        PublishRequest::new(&bad, &card_for(&bad, &bad_data, mb, "bad on purpose")?, "production"),
    )?;
    println!("{}", outcome.report());
    let bad_model_refused = matches!(outcome, Outcome::Rejected { .. });
    println!(
        "Refused, nothing published: {bad_model_refused}. Versions: {:?}",
        registry
            .versions("fraud")?
            .iter()
            .map(|v| v.version.to_string())
            .collect::<Vec<_>>()
    );

    println!("\n⏪ An operator promotes 1.0.0 by mistake, then rolls production back...");
    registry.set_alias("fraud", "production", &Version::new(1, 0, 0))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.status().version != Version::new(1, 0, 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("  server followed the alias to v{}", server.status().version);
    let back = server.rollback_alias()?;
    let served_after_rollback = server.status().version;
    println!("  rolled back production to {back}; serving v{served_after_rollback}");

    stop.store(true, Ordering::Relaxed);
    traffic.join().map_err(|_| "the traffic thread panicked")?;
    let status = server.status();
    println!(
        "\nServer status: {} requests, {} reloads, {} refused, errors seen by clients: {}",
        status.requests_served,
        status.reloads,
        status.failed_reloads,
        errors.load(Ordering::Relaxed)
    );
    println!("History:");
    for e in registry.history("fraud")? {
        println!("  {}  {}", e.at, e.kind);
    }
    Ok(Summary {
        drifting,
        retrained_version,
        served_after_retrain,
        bad_model_refused,
        served_after_rollback,
        requests_answered: answered.load(Ordering::Relaxed),
        request_errors: errors.load(Ordering::Relaxed),
    })
}

fn main() -> std::process::ExitCode {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/retrain_loop"));
    common::exit_on_error(run(&dir))
}
