//! Live outcomes, proved by simulation: feedback joined in bounded memory,
//! an A/B test that may be looked at after every outcome without fooling
//! itself, and a guardrail that rolls back a worse version and leaves a
//! healthy one alone.

use std::time::{Duration, Instant};

use model_persistence_core::{ModelCard, Version};
use model_persistence_gate::live::{
    enforce, likelihood_ratio, AbTest, AbWatch, AlwaysValid, Arm, Feedback, FeedbackConfig, FeedbackError,
    GuardVerdict, GuardWatch, Guardrail, LiveMetric, LiveMetrics, Proportion, Sequential,
};
use model_persistence_testkit::{LinearClassifier, SplitMix64};
use model_persistence_versioning::{EventKind, Registry, VersionSpec};

/// Outcomes of `n` predictions right with probability `p`, recorded and
/// reported through a `Feedback` under `arm`.
fn feed(fb: &Feedback, rng: &mut SplitMix64, arm: &Arm, p: f64, n: u64, next_id: &mut u64) {
    let now = Instant::now();
    for _ in 0..n {
        *next_id += 1;
        let id = next_id.to_string();
        let actual = i64::from(rng.next_f64() < 0.3);
        let right = rng.next_f64() < p;
        let predicted = if right { actual } else { 1 - actual };
        fb.record_at(&id, arm.clone(), predicted, None, now).expect("recorded");
        fb.outcome_at(&id, actual, now).expect("joined");
    }
}

fn arm_metrics(fb: &Feedback, arm: &Arm) -> LiveMetrics {
    fb.arm(arm).expect("the arm predicted")
}

/// One right-or-wrong outcome with probability `p`.
fn bernoulli(rng: &mut SplitMix64, p: f64) -> u64 {
    u64::from(rng.next_f64() < p)
}

/// The fixed-sample two-proportion z-test's two-sided p-value: what a
/// naive dashboard recomputes after every outcome.
fn naive_p(a: Proportion, b: Proportion) -> f64 {
    let pooled = (a.successes + b.successes) as f64 / (a.trials + b.trials) as f64;
    let se = (pooled * (1.0 - pooled) * (1.0 / a.trials as f64 + 1.0 / b.trials as f64)).sqrt();
    if se == 0.0 {
        return 1.0;
    }
    let z = ((b.rate() - a.rate()) / se).abs();
    model_persistence_gate_free_erfc(z / std::f64::consts::SQRT_2)
}

/// erfc, to keep this test free of the gate crate.
fn model_persistence_gate_free_erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let y = t
        * (-x * x - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        y
    } else {
        2.0 - y
    }
}

#[test]
fn a_thousand_aa_experiments_watched_after_every_outcome_decide_in_at_most_alpha() {
    const EXPERIMENTS: u64 = 1_000;
    const PER_ARM: u64 = 2_000;
    let settings = Sequential::default();
    let (mut sequential_decided, mut naive_decided) = (0, 0);
    for seed in 0..EXPERIMENTS {
        let mut rng = SplitMix64::new(seed);
        let mut test = AlwaysValid::new(settings);
        let (mut a, mut b) = (Proportion::default(), Proportion::default());
        let mut naive_fired = false;
        for _ in 0..PER_ARM {
            a.trials += 1;
            a.successes += bernoulli(&mut rng, 0.9);
            b.trials += 1;
            b.successes += bernoulli(&mut rng, 0.9);
            if test.update(a, b).decided {
                sequential_decided += 1;
                break;
            }
            if !naive_fired && a.trials >= settings.min_samples && naive_p(a, b) <= settings.alpha {
                naive_fired = true;
            }
        }
        naive_decided += u64::from(naive_fired);
    }
    let rate = sequential_decided as f64 / EXPERIMENTS as f64;
    let naive = naive_decided as f64 / EXPERIMENTS as f64;
    eprintln!("A/A, {EXPERIMENTS} experiments of {PER_ARM} outcomes per arm, a look after each: mSPRT decided in {rate:.3}, a z-test peeked at the same way in {naive:.3}");
    assert!(
        rate <= settings.alpha,
        "the sequential test promoted noise in {rate} of A/A runs"
    );
    assert!(
        naive > 2.0 * settings.alpha,
        "peeking at a fixed-sample test should inflate its error ({naive})"
    );
}

#[test]
fn a_known_effect_is_found_for_the_better_variant() {
    const RUNS: u64 = 200;
    let mut needed = Vec::new();
    let (mut for_b, mut for_a) = (0, 0);
    for seed in 0..RUNS {
        let mut rng = SplitMix64::new(10_000 + seed);
        let fb = Feedback::new(FeedbackConfig::default());
        let (arm_a, arm_b) = (
            Arm::variant(Version::new(1, 0, 0), "a"),
            Arm::variant(Version::new(1, 1, 0), "b"),
        );
        let mut watch = AbWatch::new(AbTest::default());
        let mut id = 0;
        for step in 1..=6_000_u64 {
            feed(&fb, &mut rng, &arm_a, 0.85, 1, &mut id);
            feed(&fb, &mut rng, &arm_b, 0.90, 1, &mut id);
            let state = watch.look(&arm_metrics(&fb, &arm_a), &arm_metrics(&fb, &arm_b));
            match state.winner.as_deref() {
                Some("b") => {
                    for_b += 1;
                    needed.push(step);
                    break;
                }
                Some(_) => {
                    for_a += 1;
                    break;
                }
                None => {}
            }
        }
    }
    needed.sort_unstable();
    let median = needed.get(needed.len() / 2).copied().unwrap_or(0);
    eprintln!("A/B 0.85 vs 0.90: decided for b in {for_b} of {RUNS}, for a in {for_a}; median outcomes per arm to decide: {median}");
    assert!(
        for_b as f64 >= 0.9 * RUNS as f64,
        "the better variant won only {for_b} of {RUNS}"
    );
    assert!(for_a <= 2, "the worse variant won {for_a} times");
    assert!(median > 0 && median < 6_000);
}

fn guard_run(seed: u64, new_accuracy: f64) -> Option<u64> {
    let mut rng = SplitMix64::new(seed);
    let fb = Feedback::new(FeedbackConfig::default());
    let (old, new) = (Arm::version(Version::new(1, 0, 0)), Arm::version(Version::new(1, 1, 0)));
    let mut id = 0;
    feed(&fb, &mut rng, &old, 0.9, 3_000, &mut id);
    let previous = arm_metrics(&fb, &old);
    let mut watch = GuardWatch::new(Guardrail {
        floor: Some(0.8),
        ..Guardrail::default()
    });
    for step in 1..=4_000 {
        feed(&fb, &mut rng, &new, new_accuracy, 1, &mut id);
        if let GuardVerdict::Breach { .. } = watch.judge(&arm_metrics(&fb, &new), Some(&previous)) {
            return Some(step);
        }
    }
    None
}

#[test]
fn the_guardrail_rolls_back_a_degraded_version_and_not_a_healthy_one() {
    const RUNS: u64 = 200;
    let degraded: Vec<Option<u64>> = (0..RUNS).map(|s| guard_run(20_000 + s, 0.84)).collect();
    let healthy: Vec<Option<u64>> = (0..RUNS).map(|s| guard_run(30_000 + s, 0.90)).collect();
    let caught = degraded.iter().filter(|d| d.is_some()).count();
    let false_alarms = healthy.iter().filter(|h| h.is_some()).count();
    let mut steps: Vec<u64> = degraded.iter().flatten().copied().collect();
    steps.sort_unstable();
    eprintln!(
        "guardrail: a version at 0.84 after one at 0.90 rolled back in {caught} of {RUNS} runs (median {} outcomes); a healthy one in {false_alarms}",
        steps.get(steps.len() / 2).copied().unwrap_or(0)
    );
    assert!(
        caught as f64 >= 0.95 * RUNS as f64,
        "only {caught} of {RUNS} degraded versions were caught"
    );
    let alpha = Guardrail::default().not_worse.expect("a test").alpha;
    assert!(
        false_alarms as f64 <= alpha * RUNS as f64,
        "{false_alarms} healthy versions were rolled back (alpha {alpha})"
    );
}

#[test]
fn a_breach_rolls_the_alias_back_with_its_evidence_in_the_registry() {
    let dir = tempfile::tempdir().expect("dir");
    let registry = Registry::create(dir.path()).expect("registry");
    let model = LinearClassifier {
        weights: vec![1.0],
        bias: 0.0,
    };
    let card = ModelCard::builder("fraud", &model).n_features(1).build().expect("card");
    for v in [Version::new(1, 0, 0), Version::new(1, 1, 0)] {
        registry
            .publish_model(&model, &card, VersionSpec::Exact(v))
            .expect("publish");
    }
    registry
        .set_alias("fraud", "production", &Version::new(1, 0, 0))
        .expect("alias");
    registry
        .set_alias("fraud", "production", &Version::new(1, 1, 0))
        .expect("alias");

    let fb = Feedback::new(FeedbackConfig::default());
    let mut rng = SplitMix64::new(7);
    let (old, new) = (Arm::version(Version::new(1, 0, 0)), Arm::version(Version::new(1, 1, 0)));
    let mut id = 0;
    feed(&fb, &mut rng, &old, 0.95, 2_000, &mut id);
    let mut watch = GuardWatch::new(Guardrail {
        floor: Some(0.9),
        ..Guardrail::default()
    });
    let healthy = watch.judge(&arm_metrics(&fb, &old), None);
    assert!(matches!(healthy, GuardVerdict::Healthy { .. }), "{healthy:?}");
    assert_eq!(
        enforce(&registry, "fraud", "production", &arm_metrics(&fb, &old), &healthy).expect("nothing"),
        None
    );
    feed(&fb, &mut rng, &new, 0.6, 500, &mut id);
    let current = arm_metrics(&fb, &new);
    let verdict = watch.judge(&current, Some(&arm_metrics(&fb, &old)));
    assert!(matches!(verdict, GuardVerdict::Breach { .. }), "{verdict:?}");
    let back = enforce(&registry, "fraud", "production", &current, &verdict)
        .expect("rolls back")
        .expect("a target");
    assert_eq!(back.version, Version::new(1, 0, 0));
    let evidence = registry
        .attachment("fraud", &Version::new(1, 1, 0), "guardrail")
        .expect("reads")
        .expect("the evidence is stored");
    assert_eq!(evidence["verdict"]["verdict"], "breach");
    assert_eq!(evidence["live"]["outcomes"], 500);
    let last = registry.history("fraud").expect("history").pop().expect("an event");
    assert!(matches!(last.kind, EventKind::RolledBack { .. }));
    assert_eq!(last.by.as_deref(), Some("guardrail"));
}

#[test]
fn feedback_joins_by_id_in_bounded_memory_and_counts_what_expires() {
    let fb = Feedback::new(FeedbackConfig {
        window: Duration::from_secs(60),
        capacity: 3,
        positive: 1,
    });
    let arm = Arm::version(Version::new(1, 0, 0));
    let t0 = Instant::now();
    fb.record_at("a", arm.clone(), 1, Some(0.8), t0).expect("a");
    assert_eq!(
        fb.record_at("a", arm.clone(), 0, None, t0),
        Err(FeedbackError::DuplicateId("a".into()))
    );
    assert_eq!(fb.record_at("", arm.clone(), 0, None, t0), Err(FeedbackError::BadId(0)));
    assert_eq!(
        fb.record_at(&"x".repeat(300), arm.clone(), 0, None, t0),
        Err(FeedbackError::BadId(300))
    );
    let joined = fb.outcome_at("a", 1, t0 + Duration::from_secs(5)).expect("joined");
    assert_eq!(
        (joined.predicted, joined.actual, joined.delay),
        (1, 1, Duration::from_secs(5))
    );
    assert_eq!(
        fb.outcome_at("a", 1, t0),
        Err(FeedbackError::AlreadyReported("a".into()))
    );
    assert!(matches!(fb.outcome_at("zzz", 1, t0), Err(FeedbackError::Unknown(_))));
    // Capacity 3: a fourth waiting prediction pushes the oldest out.
    for id in ["b", "c", "d", "e"] {
        fb.record_at(id, arm.clone(), 0, Some(0.1), t0).expect(id);
    }
    assert_eq!(fb.waiting(), 3);
    assert!(matches!(fb.outcome_at("b", 0, t0), Err(FeedbackError::Unknown(_))));
    // Past the window, the rest expire.
    assert!(matches!(
        fb.outcome_at("c", 0, t0 + Duration::from_secs(61)),
        Err(FeedbackError::Unknown(_))
    ));
    assert_eq!(fb.waiting(), 0);
    let m = fb.arm(&arm).expect("metrics");
    assert_eq!((m.predictions, m.outcomes, m.expired), (5, 1, 4));
    assert_eq!(m.accuracy, Some(1.0));
    assert!((m.brier.expect("scored") - 0.04).abs() < 1e-12);
    assert_eq!(fb.unknown_outcomes(), 3);
    // Many joined predictions never grow the memory past the capacity.
    for i in 0..10_000 {
        let id = format!("z{i}");
        fb.record_at(&id, arm.clone(), 1, None, t0 + Duration::from_secs(62))
            .expect("recorded");
        fb.outcome_at(&id, 0, t0 + Duration::from_secs(62)).expect("joined");
    }
    assert_eq!(fb.waiting(), 0);
    assert_eq!(
        LiveMetric::Accuracy.proportion(&fb.arm(&arm).expect("m")).trials,
        10_001
    );
    assert!(likelihood_ratio(Proportion::default(), Proportion::default(), 0.05) == 1.0);
}

#[test]
fn a_decided_ab_test_promotes_or_recommends_its_winner_with_the_evidence() {
    use model_persistence_gate::live::{apply, OnDecision};
    for policy in [OnDecision::Promote, OnDecision::Recommend] {
        let dir = tempfile::tempdir().expect("dir");
        let registry = Registry::create(dir.path()).expect("registry");
        let model = LinearClassifier {
            weights: vec![1.0],
            bias: 0.0,
        };
        let card = ModelCard::builder("fraud", &model).n_features(1).build().expect("card");
        for v in [Version::new(1, 0, 0), Version::new(1, 1, 0)] {
            registry
                .publish_model(&model, &card, VersionSpec::Exact(v))
                .expect("publish");
        }
        registry
            .set_alias("fraud", "production", &Version::new(1, 0, 0))
            .expect("alias");
        let settings = AbTest {
            on_decision: policy,
            ..AbTest::default()
        };
        let fb = Feedback::new(FeedbackConfig::default());
        let (a, b) = (
            Arm::variant(Version::new(1, 0, 0), "a"),
            Arm::variant(Version::new(1, 1, 0), "b"),
        );
        let mut rng = SplitMix64::new(3);
        let mut watch = AbWatch::new(settings.clone());
        let mut id = 0;
        let state = loop {
            feed(&fb, &mut rng, &a, 0.8, 10, &mut id);
            feed(&fb, &mut rng, &b, 0.95, 10, &mut id);
            let state = watch.look(&arm_metrics(&fb, &a), &arm_metrics(&fb, &b));
            if state.winner.is_some() {
                break state;
            }
            assert!(id < 100_000, "the test never decided");
        };
        assert_eq!(state.winner.as_deref(), Some("b"));
        let moved = apply(
            &registry,
            "fraud",
            "production",
            &settings,
            &state,
            &arm_metrics(&fb, &a),
            &arm_metrics(&fb, &b),
        )
        .expect("applies");
        let production = registry
            .alias("fraud", "production")
            .expect("alias")
            .expect("set")
            .version;
        let evidence = registry
            .attachment("fraud", &Version::new(1, 1, 0), "ab_decision")
            .expect("reads")
            .expect("stored");
        assert_eq!(evidence["winner"], "b");
        assert!(evidence["test"]["p_value"].as_f64().expect("p") <= 0.05);
        match policy {
            OnDecision::Promote => {
                assert_eq!(moved.map(|t| t.version), Some(Version::new(1, 1, 0)));
                assert_eq!(production, Version::new(1, 1, 0));
                let last = registry.history("fraud").expect("history").pop().expect("event");
                assert_eq!(last.by.as_deref(), Some("ab-test"));
            }
            OnDecision::Recommend => {
                assert_eq!(moved, None);
                assert_eq!(production, Version::new(1, 0, 0), "a recommendation moves nothing");
            }
        }
    }
}

/// The closed form of the mixture likelihood ratio against scipy's
/// numerical integral of the same mixture: `∫ N(Δ; θ, V) N(θ; 0, τ²) dθ /
/// N(Δ; 0, V)`, with `V` the smoothed variance the module documents.
#[test]
fn the_mixture_likelihood_ratio_matches_scipys_integral() {
    let venv = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/venv/bin/python");
    let py = std::env::var_os("MP_PYTHON").map_or(venv, std::path::PathBuf::from);
    let cases: Vec<(u64, u64, u64, u64, f64)> = vec![
        (90, 100, 90, 100, 0.05),
        (850, 1000, 900, 1000, 0.05),
        (450, 500, 430, 500, 0.02),
        (180, 200, 199, 200, 0.1),
        (9_000, 10_000, 9_050, 10_000, 0.05),
    ];
    let script = r#"
import json, sys, math
from scipy import integrate
from scipy.stats import norm
out = []
for sa, na, sb, nb, tau in json.load(sys.stdin):
    pa, pb = (sa + 1) / (na + 2), (sb + 1) / (nb + 2)
    v = pa * (1 - pa) / na + pb * (1 - pb) / nb
    d = sb / nb - sa / na
    sd = math.sqrt(v)
    f = lambda t: norm.pdf(d, loc=t, scale=sd) * norm.pdf(t, scale=tau)
    num, _ = integrate.quad(f, -1, 1, points=[0.0, d], epsabs=0, epsrel=1e-12, limit=500)
    out.append(num / norm.pdf(d, scale=sd))
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new(&py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}: run scripts/test.sh (it installs scipy into target/venv)",
                py.display()
            )
        });
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::to_string(&cases).expect("json").as_bytes())
            .expect("writes");
    }
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "scipy is needed (scripts/test.sh installs it into target/venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<f64> = serde_json::from_slice(&out.stdout).expect("json");
    for (&(sa, na, sb, nb, tau), want) in cases.iter().zip(theirs) {
        let ours = likelihood_ratio(
            Proportion {
                successes: sa,
                trials: na,
            },
            Proportion {
                successes: sb,
                trials: nb,
            },
            tau,
        );
        assert!(
            (ours - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{sa}/{na} vs {sb}/{nb}, tau {tau}: ours {ours}, scipy {want}"
        );
    }
}
