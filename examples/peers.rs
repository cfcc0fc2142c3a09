//! This project's side of the side-by-side comparison with the Python peers
//! (`scripts/bench-peers.sh` runs it, then times numpy, safetensors,
//! pickle, joblib and scikit-learn on the same data, and prints ratios).
//!
//! ```text
//! cargo run --release --example peers -- DIR
//! ```
//!
//! writes into `DIR` the data the Python side reads (`vector.f64`: the
//! 100 MB vector; `forest_x.f64`, `forest_y.u8`: the 10,000 × 20 training
//! set; `rows.f64`: 1000 rows to predict), times
//!
//! - a 100 MB `f64` model at level 0: save without fsync, verified load,
//!   reading the file and SHA-256 of its bytes (the floor a verified load
//!   can reach), `read_card`, and the peak memory of a load in a fresh
//!   process;
//! - a forest of 100 trees of depth 15 at levels 3 and 0: file size, load;
//!   predict of 1000 rows and of one row,
//!
//! and prints one JSON object of medians (seconds, bytes) on stdout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use linfa::prelude::*;
use linfa_ensemble::EnsembleLearnerParams;
use linfa_trees::DecisionTree;
use model_persistence::models::linfa::RandomForest;
use model_persistence::prelude::*;
use model_persistence_testkit::{fraud_like, DenseVector, SplitMix64, FRAUD_FEATURES};
use rand::SeedableRng;
use sha2::Digest;

/// The median of `runs` timings of `f`, in seconds.
fn median(runs: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn write_f64(path: &Path, values: impl Iterator<Item = f64>) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.flat_map(f64::to_le_bytes).collect();
    std::fs::write(path, bytes)
}

/// The peak resident memory of this process, from `/proc/self/status`.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let first = args.next().ok_or("usage: peers DIR | peers --peak-load BUNDLE")?;
    if first == "--peak-load" {
        // A fresh process: its peak memory is the load's.
        let path = args.next().ok_or("--peak-load needs a bundle")?;
        let before = peak_rss().unwrap_or(0);
        let loaded = persistence::load::<DenseVector>(&path)?;
        std::hint::black_box(loaded.model().weights.len());
        println!("{} {}", before, peak_rss().unwrap_or(0));
        return Ok(());
    }
    let dir = PathBuf::from(first);
    std::fs::create_dir_all(&dir)?;
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: f64| {
        eprintln!("{k}: {v}");
        out.insert(k.to_owned(), v.into());
    };

    // The 100 MB vector.
    let mut rng = SplitMix64::new(1);
    let model = DenseVector {
        weights: (0..12_500_000).map(|_| rng.next_normal()).collect(),
    };
    write_f64(&dir.join("vector.f64"), model.weights.iter().copied())?;
    let card = ModelCard::builder("dense", &model)
        .version(Version::new(1, 0, 0))
        .n_features(1)
        .build()?;
    let path = dir.join("vector.bundle");
    let writer = BundleWriter::default().level(0).without_card_json().without_fsync();
    let saved = writer.save(&path, &model, &card)?;
    put("vector_file_bytes", saved.file_len() as f64);
    put(
        "vector_save_nofsync",
        median(9, || {
            writer.save(&path, &model, &card).expect("saves");
        }),
    );
    put(
        "vector_load_verified",
        median(9, || {
            std::hint::black_box(persistence::load::<DenseVector>(&path).expect("loads"));
        }),
    );
    put(
        "vector_read_sha256",
        median(9, || {
            let bytes = std::fs::read(&path).expect("reads");
            std::hint::black_box(sha2::Sha256::digest(&bytes));
        }),
    );
    put(
        "vector_read_card",
        median(101, || {
            std::hint::black_box(persistence::read_card(&path).expect("card"));
        }),
    );
    let me = std::env::current_exe()?;
    let peak = std::process::Command::new(me).arg("--peak-load").arg(&path).output()?;
    let text = String::from_utf8_lossy(&peak.stdout);
    let mut nums = text.split_whitespace().filter_map(|n| n.parse::<f64>().ok());
    if let (Some(before), Some(after)) = (nums.next(), nums.next()) {
        put("vector_load_peak_rss_before", before);
        put("vector_load_peak_rss", after);
    }
    drop(model);

    // The forest.
    let (x, y) = fraud_like(10_000, 0.1, 42);
    write_f64(&dir.join("forest_x.f64"), x.iter().copied())?;
    std::fs::write(dir.join("forest_y.u8"), y.iter().map(|&v| v as u8).collect::<Vec<u8>>())?;
    let rows = fraud_like(1_000, 0.1, 7).0;
    write_f64(&dir.join("rows.f64"), rows.iter().copied())?;
    let data = Dataset::new(x, y);
    let rng = rand_xoshiro::Xoshiro256Plus::seed_from_u64(7);
    let ensemble = EnsembleLearnerParams::new_fixed_rng(DecisionTree::params().max_depth(Some(15)), rng)
        .ensemble_size(100)
        .bootstrap_proportion(1.0)
        .feature_proportion(1.0)
        .fit(&data)?;
    let forest = RandomForest::new(&ensemble, FRAUD_FEATURES.len())?;
    put("forest_nodes", forest.n_nodes() as f64);
    let card = ModelCard::builder("forest", &forest)
        .version(Version::new(1, 0, 0))
        .feature_names(FRAUD_FEATURES)
        .training_data(data.records().view(), "fraud_like(10000, 0.1, 42)")
        .build()?;
    let path = dir.join("forest.bundle");
    let saved = BundleWriter::default()
        .level(3)
        .without_card_json()
        .save(&path, &forest, &card)?;
    put("forest_file_bytes", saved.file_len() as f64);
    put(
        "forest_load",
        median(31, || {
            std::hint::black_box(persistence::load::<RandomForest>(&path).expect("loads"));
        }),
    );
    let path0 = dir.join("forest-level0.bundle");
    let saved0 = BundleWriter::default()
        .level(0)
        .without_card_json()
        .save(&path0, &forest, &card)?;
    put("forest_file_bytes_level0", saved0.file_len() as f64);
    put(
        "forest_load_level0",
        median(31, || {
            std::hint::black_box(persistence::load::<RandomForest>(&path0).expect("loads"));
        }),
    );
    put(
        "forest_predict_1000",
        median(51, || {
            std::hint::black_box(forest.predict(rows.view()));
        }),
    );
    let one = rows.slice(ndarray::s![0..1, ..]);
    put(
        "forest_predict_1",
        median(2001, || {
            std::hint::black_box(forest.predict(one));
        }),
    );
    println!("{}", serde_json::Value::Object(out));
    Ok(())
}
