//! Tree ensembles exported from scikit-learn (skl2onnx: forests, extra
//! trees, gradient boosting, HistGradientBoosting), XGBoost and LightGBM
//! (onnxmltools) run here as onnxruntime runs them, on the flat forest when
//! the graph is a lone tree ensemble, rows with missing values (NaN) included:
//! identical labels, probabilities and values within 1e-5
//! (fixtures from scripts/onnx-fixtures.py); and ensembles written node by
//! node that use every branch mode, aggregate function and post transform.
#![cfg(feature = "onnx")]

use model_persistence_core::{from_bytes, to_bytes, Model, ModelCard, Predictor, ProbeValue};
use model_persistence_models::onnx::{OnnxModel, TreeEnsemble};
use ndarray::Array2;

fn load(name: &str) -> (OnnxModel, Array2<f64>, serde_json::Value) {
    load_as(name, true)
}

fn load_as(name: &str, native: bool) -> (OnnxModel, Array2<f64>, serde_json::Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    let graph = std::fs::read(dir.join(format!("{name}.onnx"))).unwrap_or_else(|e| {
        panic!("{name}.onnx is missing ({e}): run `python scripts/onnx-fixtures.py` (scripts/test.sh does)")
    });
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).expect("fixture json")).expect("json");
    let rows: Vec<Vec<Option<f64>>> = serde_json::from_value(json["rows"].clone()).expect("rows");
    let width = rows[0].len();
    let flat: Vec<f64> = rows.concat().into_iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    let rows = Array2::from_shape_vec((flat.len() / width, width), flat).expect("rows");
    assert!(
        rows.iter().any(|v| v.is_nan()),
        "{name}: the fixture has rows with missing values"
    );
    let model = OnnxModel::from_graph(graph).expect(name);
    assert_eq!(model.runs_natively(), native, "{name}: on the flat forest or on tract");
    // Through a bundle, as it is served.
    let card = ModelCard::builder(name, &model)
        .extension("onnx", model.describe())
        .build()
        .expect("card");
    let loaded = from_bytes::<OnnxModel>(&to_bytes(&model, &card).expect("bundle")).expect("loads");
    let (model, _) = loaded.into_parts();
    (model, rows, json)
}

/// The lowered form stored in a bundle answers exactly as the graph does.
fn stored(name: &str, model: &OnnxModel, rows: &Array2<f64>) {
    let trees = model.tree_ensemble().expect("a lone tree ensemble");
    let card = ModelCard::builder(name, &trees)
        .extension("onnx", model.describe())
        .probe(rows.view())
        .build()
        .expect("card");
    assert_eq!(card.kind, "onnx.tree_ensemble.v3");
    let loaded = from_bytes::<TreeEnsemble>(&to_bytes(&trees, &card).expect("bundle")).expect("loads, probe replayed");
    assert_eq!(
        Predictor::predict(loaded.model().get(), rows.view()),
        Predictor::predict(model, rows.view()),
        "{name}"
    );
    assert_eq!(
        Predictor::scores(loaded.model().get(), rows.view()),
        Predictor::scores(model, rows.view()),
        "{name}"
    );
    // One walk for both gives what two walks give.
    for (both, one_by_one) in [
        (
            Predictor::predict_scored(loaded.model().get(), rows.view()),
            (
                Predictor::predict(loaded.model().get(), rows.view()),
                Predictor::scores(loaded.model().get(), rows.view()),
            ),
        ),
        (
            Predictor::predict_scored(model, rows.view()),
            (
                Predictor::predict(model, rows.view()),
                Predictor::scores(model, rows.view()),
            ),
        ),
    ] {
        assert_eq!(both, one_by_one, "{name}: predict_scored");
    }
}

fn close(name: &str, got: f64, want: f64) {
    assert!((got - want).abs() <= 1e-5, "{name}: {got} vs onnxruntime {want}");
}

/// A regressor's values, each within 1e-5 of onnxruntime's.
fn values_close(name: &str, model: &OnnxModel, rows: &Array2<f64>, want: &[f64]) {
    let got = Predictor::predict(model, rows.view());
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        match g {
            ProbeValue::Value(v) => close(name, *v, *w),
            other => panic!("{name}: a regressor answered {other:?}"),
        }
    }
}

#[test]
fn classifiers_match_onnxruntime_with_missing_values() {
    for (name, native) in [
        ("extra_trees", true),
        ("gradient_boosting", true),
        ("gradient_boosting_3class", true),
        // scikit-learn's HistGradientBoosting: missing values go where training sent them.
        ("hist_gradient_boosting", true),
        ("xgboost", true),
        ("xgboost_3class", true),
        // LightGBM's converter writes a Cast and a product by 1 after the trees.
        ("lightgbm", true),
        // A categorical split: a chain of `==` branches sharing a child.
        ("lightgbm_categorical", true),
    ] {
        let (model, rows, json) = load_as(name, native);
        stored(name, &model, &rows);
        let want: Vec<i64> = serde_json::from_value(json["labels"].clone()).expect("labels");
        let labels: Vec<ProbeValue> = Predictor::predict(&model, rows.view()).to_vec();
        let want_labels: Vec<ProbeValue> = want.iter().map(|&l| ProbeValue::Label(l)).collect();
        assert_eq!(labels, want_labels, "{name}: labels");
        let probabilities: Vec<Vec<f64>> = serde_json::from_value(json["probabilities"].clone()).expect("p");
        let scores = Predictor::scores(&model, rows.view()).expect("scores");
        assert_eq!(scores.ncols(), probabilities[0].len(), "{name}");
        for (i, row) in probabilities.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                close(name, scores[[i, j]], *p);
            }
        }
    }
}

#[test]
fn regressors_match_onnxruntime_with_missing_values() {
    for name in [
        "random_forest_regressor",
        "extra_trees_regressor",
        "gradient_boosting_regressor",
        "hist_gradient_boosting_regressor",
        "xgboost_regressor",
        "lightgbm_regressor",
    ] {
        let (model, rows, json) = load(name);
        stored(name, &model, &rows);
        let want: Vec<f64> = serde_json::from_value(json["values"].clone()).expect("values");
        values_close(name, &model, &rows, &want);
    }
}

/// Ensembles written node by node (scripts/onnx-fixtures.py), not by an
/// exporter: every branch mode, missing values sent either way, thresholds
/// equal to row values, and every aggregate function and post transform,
/// against onnxruntime: labels identical, every score within 1e-5.
#[test]
fn handmade_ensembles_match_onnxruntime_in_every_mode() {
    for name in [
        "handmade_regressor_average_probit",
        "handmade_regressor_min",
        "handmade_regressor_max",
        "handmade_classifier_softmax",
        "handmade_classifier_softmax_zero",
        "handmade_classifier_logistic",
        "handmade_classifier_probit",
    ] {
        let (model, rows, json) = load(name);
        stored(name, &model, &rows);
        let scores = Predictor::scores(&model, rows.view()).expect("scores");
        let want: Vec<Vec<f64>> = if let Some(labels) = json.get("labels") {
            let labels: Vec<i64> = serde_json::from_value(labels.clone()).expect("labels");
            let got: Vec<ProbeValue> = Predictor::predict(&model, rows.view()).to_vec();
            assert_eq!(
                got,
                labels.into_iter().map(ProbeValue::Label).collect::<Vec<_>>(),
                "{name}: labels"
            );
            serde_json::from_value(json["probabilities"].clone()).expect("probabilities")
        } else if let Some(targets) = json.get("targets") {
            serde_json::from_value(targets.clone()).expect("targets")
        } else {
            let values: Vec<f64> = serde_json::from_value(json["values"].clone()).expect("values");
            values.into_iter().map(|v| vec![v]).collect()
        };
        assert_eq!(scores.dim(), (want.len(), want[0].len()), "{name}");
        for (i, row) in want.iter().enumerate() {
            for (j, w) in row.iter().enumerate() {
                close(&format!("{name} row {i} output {j}"), scores[[i, j]], *w);
            }
        }
    }
}

/// scikit-learn pipelines: imputation (`Imputer`) and scaling (`Scaler`,
/// or Cast, Mul and Add) before the trees run on tract, the trees on the
/// flat forest; the answers are onnxruntime's. Such a graph is stored
/// whole (its nodes before the trees need tract), not as the lowered kind.
#[test]
fn pipelines_run_their_preprocessing_on_tract_and_their_trees_natively() {
    let name = "pipeline_imputer_scaler_forest";
    let (model, rows, json) = load(name);
    assert!(model.tree_ensemble().is_none(), "{name}: stored whole");
    let runtime = model.describe()["runtime"].as_str().expect("runtime").to_owned();
    assert!(
        runtime.starts_with("tract 0.23.9 before the trees, then flat forest ("),
        "{runtime}"
    );
    let want: Vec<i64> = serde_json::from_value(json["labels"].clone()).expect("labels");
    let want: Vec<ProbeValue> = want.into_iter().map(ProbeValue::Label).collect();
    assert_eq!(Predictor::predict(&model, rows.view()).to_vec(), want, "{name}: labels");
    let probabilities: Vec<Vec<f64>> = serde_json::from_value(json["probabilities"].clone()).expect("p");
    let (labels, scores) = Predictor::predict_scored(&model, rows.view());
    assert_eq!(labels.to_vec(), want, "{name}: labels with scores");
    let scores = scores.expect("scores");
    assert_eq!(scores.ncols(), 3, "{name}: three classes");
    for (i, row) in probabilities.iter().enumerate() {
        for (j, p) in row.iter().enumerate() {
            close(name, scores[[i, j]], *p);
        }
    }
    // One row at a time, as a server answers, the same.
    for (i, want) in want.iter().enumerate().take(20) {
        let one = rows.slice(ndarray::s![i..i + 1, ..]);
        assert_eq!(&Predictor::predict(&model, one)[0], want, "{name}: row {i} alone");
    }

    let name = "pipeline_scaler_boosting_regressor";
    let (model, rows, json) = load(name);
    let want: Vec<f64> = serde_json::from_value(json["values"].clone()).expect("values");
    values_close(name, &model, &rows, &want);
}

/// Nodes after the trees that change their outputs (a target's scaling
/// undone; probabilities clipped) run on tract from the flat forest's
/// outputs; the answers are onnxruntime's, and the graph is stored whole.
#[test]
fn nodes_after_the_trees_run_on_tract_from_the_forest_outputs() {
    let name = "after_trees_scaled_regressor";
    let (model, rows, json) = load(name);
    assert!(model.tree_ensemble().is_none(), "{name}: stored whole");
    let runtime = model.describe()["runtime"].as_str().expect("runtime").to_owned();
    assert!(runtime.ends_with("then tract 0.23.9 after the trees"), "{runtime}");
    let want: Vec<f64> = serde_json::from_value(json["values"].clone()).expect("values");
    values_close(name, &model, &rows, &want);

    let name = "after_trees_clipped_classifier";
    let (model, rows, json) = load(name);
    let want: Vec<i64> = serde_json::from_value(json["labels"].clone()).expect("labels");
    let want: Vec<ProbeValue> = want.into_iter().map(ProbeValue::Label).collect();
    let probabilities: Vec<Vec<f64>> = serde_json::from_value(json["probabilities"].clone()).expect("p");
    let (labels, scores) = Predictor::predict_scored(&model, rows.view());
    assert_eq!(labels.to_vec(), want, "{name}: labels");
    assert_eq!(
        Predictor::predict(&model, rows.view()).to_vec(),
        want,
        "{name}: labels alone"
    );
    let scores = scores.expect("scores");
    assert!(
        scores.iter().all(|&p| (0.05..=0.95).contains(&(p as f32))),
        "{name}: clipped"
    );
    for (i, row) in probabilities.iter().enumerate() {
        for (j, p) in row.iter().enumerate() {
            close(name, scores[[i, j]], *p);
        }
    }
    assert_eq!(
        Predictor::scores(&model, rows.view()),
        Some(scores),
        "{name}: scores alone"
    );
}

/// Checked predictions take NaN for a graph with trees or an imputer (they
/// send or replace missing values) and refuse it for any other.
#[test]
fn graphs_that_take_missing_values_take_nan_in_checked_predictions() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    for (name, takes) in [
        ("pipeline_imputer_scaler_forest", true),
        ("after_trees_scaled_regressor", true),
        ("logistic_regression", false),
    ] {
        let model = OnnxModel::from_graph(std::fs::read(dir.join(format!("{name}.onnx"))).expect(name)).expect(name);
        let card = ModelCard::builder(name, &model).build().expect("card");
        let loaded = from_bytes::<OnnxModel>(&to_bytes(&model, &card).expect("bundle")).expect("loads");
        let mut row = Array2::zeros((1, model.input_width()));
        row[[0, 1]] = f64::NAN;
        let answer = loaded.predict(row.view());
        assert_eq!(answer.is_ok(), takes, "{name}: {answer:?}");
        if !takes {
            assert!(
                matches!(
                    answer,
                    Err(model_persistence_core::Error::Input(
                        model_persistence_core::InputError::NonFinite { .. }
                    ))
                ),
                "{name}"
            );
        }
    }
}

/// ai.onnx.ml opset 5's `TreeEnsemble` (tract has no such operator) runs on
/// the flat forest as onnxruntime runs it: an ensemble written node by node
/// (every branch mode, missing values sent either way, AVERAGE, a tree that
/// is one leaf), and the same with every third node a set-membership node
/// over integer codes, both stored lowered; and scikit-learn's gradient
/// boosting written as one, its base value added by a node after the trees.
#[test]
fn opset_5_tree_ensembles_match_onnxruntime() {
    for name in ["tree_ensemble_v5_handmade", "tree_ensemble_v5_member"] {
        let (model, rows, json) = load(name);
        stored(name, &model, &rows);
        let want: Vec<f64> = serde_json::from_value(json["values"].clone()).expect("values");
        values_close(name, &model, &rows, &want);
    }

    let name = "tree_ensemble_v5_boosting_regressor";
    let (model, rows, json) = load(name);
    assert!(
        model.tree_ensemble().is_none(),
        "{name}: the Add after the trees runs on tract"
    );
    let want: Vec<f64> = serde_json::from_value(json["values"].clone()).expect("values");
    values_close(name, &model, &rows, &want);
}

/// Classes named by strings (scikit-learn trained on string labels): the
/// forest predicts each class's index in `class_names`, the names are the
/// graph's, in its order, and they are kept by the stored lowered form and
/// written to the card, so a label and its name are onnxruntime's.
#[test]
fn string_labels_are_indices_into_the_class_names() {
    for name in ["random_forest_string_labels", "gradient_boosting_string_labels"] {
        let (model, rows, json) = load(name);
        stored(name, &model, &rows);
        let names = model.class_names().expect("the graph's class names").to_vec();
        let want: Vec<String> = serde_json::from_value(json["labels"].clone()).expect("labels");
        let got: Vec<String> = Predictor::predict(&model, rows.view())
            .iter()
            .map(|p| match p {
                ProbeValue::Label(l) => names[usize::try_from(*l).expect("an index")].clone(),
                other => panic!("{name}: {other:?}"),
            })
            .collect();
        assert_eq!(got, want, "{name}: labels");
        let probabilities: Vec<Vec<f64>> = serde_json::from_value(json["probabilities"].clone()).expect("p");
        let scores = Predictor::scores(&model, rows.view()).expect("scores");
        assert_eq!(scores.ncols(), names.len(), "{name}: a score per name");
        for (i, row) in probabilities.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                close(name, scores[[i, j]], *p);
            }
        }
        let trees = model.tree_ensemble().expect("lowered");
        assert_eq!(
            trees.class_names(),
            Some(names.as_slice()),
            "{name}: the stored form keeps them"
        );
        let card = ModelCard::builder(name, &trees).build().expect("card");
        assert_eq!(card.classes, names, "{name}: the card names the classes");
        let loaded = from_bytes::<TreeEnsemble>(&to_bytes(&trees, &card).expect("bundle")).expect("loads");
        assert_eq!(
            loaded.model().class_names(),
            Some(names.as_slice()),
            "{name}: after loading"
        );
    }
    // Integer labels are their own names.
    let (model, _, _) = load("random_forest_regressor");
    assert_eq!(model.class_names(), None);
}

/// A probe replays bit for bit where the project's own code computes the
/// outputs (a lone tree ensemble on the flat forest), and within
/// `onnx::PROBE_TOLERANCE` where tract computes any of them (its kernels
/// follow the CPU, so a bundle saved on one machine must load on another);
/// a value further off is refused either way.
#[test]
fn probes_replay_exactly_on_the_flat_forest_and_within_a_tolerance_on_tract() {
    use model_persistence_models::onnx::PROBE_TOLERANCE;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    for (name, tolerance) in [
        ("gradient_boosting_regressor", 0.0),
        ("after_trees_scaled_regressor", PROBE_TOLERANCE),
    ] {
        let model = OnnxModel::from_graph(std::fs::read(dir.join(format!("{name}.onnx"))).expect(name)).expect(name);
        assert_eq!(Model::probe_tolerance(&model), tolerance, "{name}");
        let rows = Array2::from_elem((2, model.input_width()), 0.25);
        let card = ModelCard::builder(name, &model)
            .probe(rows.view())
            .build()
            .expect("card");
        let bundle = to_bytes(&model, &card).expect("the probe as computed reproduces");
        from_bytes::<OnnxModel>(&bundle).expect("loads");
        let recorded = match card.probe.as_ref().expect("probe").expected[0] {
            ProbeValue::Value(v) => v,
            ProbeValue::Label(l) => panic!("{name}: a regressor's probe holds values, not label {l}"),
        };
        let nudged = |by: f64| {
            let mut card = card.clone();
            card.probe.as_mut().expect("probe").expected[0] =
                ProbeValue::Value(recorded + by * recorded.abs().max(1.0));
            to_bytes(&model, &card)
        };
        // One unit in the last place of a float32 output: another CPU's kernel.
        let ulp = f64::from(f32::EPSILON);
        assert_eq!(
            nudged(ulp).is_ok(),
            tolerance > 0.0,
            "{name}: a value one float32 ulp off"
        );
        let far = nudged(1e-3);
        assert!(
            matches!(far, Err(model_persistence_core::Error::ProbeMismatch { row: 0, .. })),
            "{name}: a value 1e-3 off is another model: {far:?}"
        );
    }
}
