//! The report page: what it shows of a registry, that markup in names and
//! notes stays text, and what a person sees when Chromium renders it.

use model_persistence_core::ModelCard;
use model_persistence_gate::{evaluate_and_publish, BaselineRule, Gate, Margin, PublishRequest, Rule};
use model_persistence_serving::{DriftReport, FeatureDrift};
use model_persistence_testkit::{fraud_like, LinearClassifier, FRAUD_FEATURES};
use model_persistence_versioning::{Bump, ModelRef, Registry, VersionSpec};

const HOSTILE: &str = "<script>alert('x')</script><img src=x onerror=alert(1)>";

fn card(name: &str, f1: f64, accuracy: f64, note: &str) -> (LinearClassifier, ModelCard) {
    let (x, _) = fraud_like(500, 0.1, 3);
    let model = LinearClassifier {
        weights: (0..FRAUD_FEATURES.len()).map(|i| i as f64 * 0.1 - 0.5).collect(),
        bias: 0.1,
    };
    let mut features: Vec<String> = FRAUD_FEATURES.iter().map(|s| (*s).to_owned()).collect();
    features[0] = format!("amount{HOSTILE}");
    let card = ModelCard::builder(name, &model)
        .feature_names(features)
        .classes(["legitimate", "fraud"])
        .metric("f1", f1)
        .metric("accuracy", accuracy)
        .training_data(x.view(), "fraud_like(500, 0.1, 3)")
        .tag(format!("team{HOSTILE}"))
        .notes(note)
        .build()
        .expect("card");
    (model, card)
}

/// Three versions through the gate (two pass, one fails and is not
/// published), `production` moved and rolled back once.
fn registry() -> (tempfile::TempDir, Registry) {
    let dir = tempfile::tempdir().expect("temp dir");
    let registry = Registry::create(dir.path())
        .expect("registry")
        .actor(format!("mallory{HOSTILE}"));
    let gate = Gate::new([
        Rule::higher_is_better("f1")
            .threshold(0.7)
            .baseline(BaselineRule::MayRegress(Margin::Absolute(0.0))),
        Rule::higher_is_better("accuracy").threshold(0.8),
    ]);
    for (f1, acc) in [(0.81, 0.93), (0.84, 0.95), (0.79, 0.96), (0.88, 0.97)] {
        let (model, card) = card("fraud", f1, acc, &format!("notes {HOSTILE}"));
        evaluate_and_publish(
            &gate,
            &registry,
            PublishRequest::new(&model, &card, "production").version(VersionSpec::Bump(Bump::Minor)),
        )
        .expect("gate runs");
    }
    // What a guardrail stores when it rolls back (gate::live::enforce).
    registry
        .attach(
            "fraud",
            &model_persistence_core::Version::new(1, 2, 0),
            "guardrail",
            &serde_json::json!({
                "alias": "production",
                "verdict": {"verdict": "breach", "reason": format!("live accuracy fell {HOSTILE}"), "value": 0.61,
                            "test": {"p_value": 0.001}},
                "live": {"outcomes": 412, "accuracy": 0.61, "precision": 0.5, "recall": 0.4},
            }),
        )
        .expect("attaches");
    registry.rollback("fraud", "production").expect("rolls back");
    (dir, registry)
}

fn live() -> DriftReport {
    DriftReport {
        window: 1000,
        features: FRAUD_FEATURES
            .iter()
            .enumerate()
            .map(|(i, name)| FeatureDrift {
                name: if i == 0 {
                    format!("amount{HOSTILE}")
                } else {
                    (*name).to_owned()
                },
                psi: if i == 1 { 0.42 } else { 0.01 },
                drifting: i == 1,
                live_fractions: (0..10).map(|b| if i == 1 && b == 9 { 0.55 } else { 0.05 }).collect(),
            })
            .collect(),
    }
}

fn page() -> String {
    let (_dir, registry) = registry();
    let reference: ModelRef = "fraud@production".parse().expect("reference");
    let report = model_persistence_report::gather(&registry, &reference)
        .expect("gathers")
        .with_live(Some(live()));
    model_persistence_report::render(&report)
}

#[test]
fn the_page_shows_the_card_versions_gate_decisions_timeline_and_drift() {
    let (_dir, registry) = registry();
    let reference: ModelRef = "fraud@production".parse().expect("reference");
    let report = model_persistence_report::gather(&registry, &reference).expect("gathers");
    // 0.79 failed the baseline check: three versions, production rolled
    // back from 1.2.0 (0.88) to 1.1.0 (0.84).
    assert_eq!(report.versions.len(), 3);
    assert_eq!(report.selected.version.to_string(), "1.1.0");
    assert!(report
        .versions
        .iter()
        .all(|v| v.gate.as_ref().and_then(|g| g.report.as_ref()).is_some()));
    let html = model_persistence_report::render(&report.with_live(Some(live())));
    for needle in [
        "<!DOCTYPE html>",
        "fraud 1.1.0",
        "0.8400",                  // f1 of the card shown
        "0.8800",                  // f1 of 1.2.0 in the versions table
        "fraud_like(500, 0.1, 3)", // the dataset
        "gated for production against 1.0.0",
        "rolled back",
        "mallory&lt;script&gt;", // who moved the alias
        "Decisions on live outcomes",
        "by the guardrail",
        "live accuracy fell &lt;script&gt;",
        "412",
        "PSI",
        "0.4200",
        "<svg",
        "metrics by version",
    ] {
        assert!(html.contains(needle), "the page lacks {needle:?}");
    }
    // Self-contained: nothing is fetched, nothing runs.
    for banned in ["<script", "<link", "src=\"http", "@import", "url("] {
        assert!(!html.contains(banned), "the page holds {banned:?}");
    }
}

#[test]
fn markup_in_names_tags_notes_and_features_is_shown_as_text() {
    let html = page();
    assert!(!html.contains("<script"), "a script tag got through");
    assert!(!html.contains("<img"), "an img tag got through");
    assert!(
        html.contains("&lt;script&gt;alert("),
        "the hostile text is shown escaped"
    );
    // In the tag list, the notes, the passport, the histograms' titles.
    assert!(html.matches("&lt;script&gt;").count() >= 4);
}

#[test]
fn an_unknown_model_or_alias_is_a_typed_error() {
    let (_dir, registry) = registry();
    for r in ["nobody", "fraud@staging", "fraud@9.9.9"] {
        let reference: ModelRef = r.parse().expect("reference");
        assert!(
            matches!(
                model_persistence_report::gather(&registry, &reference),
                Err(model_persistence_report::Error::Registry(_))
            ),
            "{r}"
        );
    }
}

/// Chromium, headless, renders the page as a person sees it: the
/// screenshot is not blank, the rendered text holds the version, the
/// metrics and the gate's verdicts, and no script ran (the title is intact
/// and no alert fired: there is no script to run).
#[test]
fn chromium_renders_the_page_with_its_text() {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("no Chromium: install Debian's `chromium` package (scripts/test.sh does)");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("report.html");
    std::fs::write(&path, page()).expect("writes");
    let url = format!("file://{}", path.display());
    let shot = dir.path().join("shot.png");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ];
    let run = |args: &[&str]| {
        let profile = dir.path().join("profile");
        let out = std::process::Command::new(chromium)
            .args(common)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(args)
            .output()
            .expect("chromium runs");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    run(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,2400",
        &url,
    ]);
    let png = std::fs::read(&shot).expect("a screenshot");
    let decoder = png::Decoder::new(std::io::Cursor::new(png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let pixels = &pixels[..info.buffer_size()];
    let step = info.color_type.samples();
    let distinct: std::collections::BTreeSet<&[u8]> = pixels.chunks(step).step_by(7).collect();
    assert!(
        distinct.len() > 50,
        "the screenshot looks blank: {} colours",
        distinct.len()
    );
    // The text as rendered: Chromium's DOM after layout (no script could
    // have changed it: the page has none).
    let dom = String::from_utf8(run(&["--dump-dom", &url]).stdout).expect("utf-8");
    for needle in ["fraud 1.1.0", "0.8400", "passed", "failed", "rolled back", "0.4200"] {
        assert!(dom.contains(needle), "the rendered page lacks {needle:?}");
    }
    assert!(dom.contains("&lt;script&gt;"), "the hostile name is shown as text");
}
