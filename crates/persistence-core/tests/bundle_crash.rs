//! A process killed while saving leaves the previous bundle loadable.
//!
//! The test binary runs itself as a child that saves two models in turn to
//! the same path as fast as it can, kills the child with SIGKILL at random
//! moments, and after every kill loads the bundle: it must be one of the two
//! models, complete and verified, never a mix or a partial file.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Linear;
use model_persistence_core::{BundleWriter, ModelCard};
use model_persistence_testkit::SplitMix64;

const KILLS: usize = 40;

fn model(variant: u64) -> (Linear, ModelCard) {
    let mut rng = SplitMix64::new(variant);
    let model = Linear {
        weights: (0..50_000).map(|_| rng.next_normal()).collect(),
        bias: variant as f64,
    };
    let card = ModelCard::builder("crash", &model)
        .version(semver::Version::new(1, 0, variant))
        .n_features(model.weights.len())
        .created_at(common::fixed_time())
        .build()
        .expect("card");
    (model, card)
}

fn child(path: &Path) -> ! {
    let variants = [model(1), model(2)];
    let writer = BundleWriter::default().level(1);
    for i in 0.. {
        let (m, c) = &variants[i % 2];
        writer.save(path, m, c).expect("child saves");
    }
    unreachable!("the parent kills the child")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--crash-child") {
        child(Path::new(&args[pos + 1]));
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.bundle");
    let (first, first_card) = model(1);
    let (_, second_card) = model(2);
    BundleWriter::default()
        .save(&path, &first, &first_card)
        .expect("first save");
    let exe = std::env::current_exe().expect("own path");
    let mut rng = SplitMix64::new(2024);
    let mut seen = [0_usize; 2];
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .arg("--crash-child")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        std::thread::sleep(Duration::from_millis(20 + rng.next_below(480) as u64));
        child.kill().expect("kill child");
        child.wait().expect("reap child");
        let loaded = match model_persistence_core::load::<Linear>(&path) {
            Ok(loaded) => loaded,
            Err(e) => {
                eprintln!("kill {kill}: the bundle does not load after a crash: {e}");
                println!("test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
                std::process::exit(1);
            }
        };
        let card = loaded.card();
        assert!(card == &first_card || card == &second_card, "kill {kill}: unknown card");
        seen[usize::from(card == &second_card)] += 1;
        assert_eq!(
            loaded.model().bias as u64,
            card.version.patch,
            "kill {kill}: model and card mixed"
        );
        let json = std::fs::read_to_string(model_persistence_core::card_json_path(&path)).expect("card json");
        ModelCard::from_json(&json).expect("card json is complete after a crash");
    }
    assert!(seen[1] > 0, "the child never completed a save: the kills prove nothing");
    println!(
        "crash test: {KILLS} kills, bundle was version 1 {} times and version 2 {} times, {:.1}s",
        seen[0],
        seen[1],
        started.elapsed().as_secs_f64()
    );
    println!("test bundle_crash::killed_saves_leave_a_loadable_bundle ... ok");
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
