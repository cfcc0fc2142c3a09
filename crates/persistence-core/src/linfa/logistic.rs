//! linfa's logistic regression: kind `linfa.logistic_regression.v1`.

use linfa::prelude::Predict;
use linfa_logistic::FittedLogisticRegression;
use ndarray::{Array1, ArrayView2};

use crate::model::{Model, Predictor, StructureError};

impl Predictor for FittedLogisticRegression<f64, usize> {
    type Output = usize;

    fn n_features(&self) -> Option<usize> {
        Some(self.params().len())
    }

    fn predict(&self, rows: ArrayView2<'_, f64>) -> Array1<usize> {
        Predict::predict(self, &rows)
    }

    /// One column per class label up to the larger of the two, the two
    /// classes holding their probabilities.
    fn scores(&self, rows: ArrayView2<'_, f64>) -> Option<ndarray::Array2<f64>> {
        let p = self.predict_probabilities(&rows);
        let (pos, neg) = (self.labels().pos.class, self.labels().neg.class);
        let mut out = ndarray::Array2::zeros((rows.nrows(), pos.max(neg) + 1));
        for (i, p) in p.iter().enumerate() {
            out[[i, pos]] = *p;
            out[[i, neg]] = 1.0 - p;
        }
        Some(out)
    }
}

impl Model for FittedLogisticRegression<f64, usize> {
    const KIND: &'static str = "linfa.logistic_regression.v1";

    fn check_structure(&self, n_features: usize) -> Result<(), StructureError> {
        if self.params().len() != n_features {
            return Err(StructureError::new(format!(
                "{} coefficients for {n_features} features",
                self.params().len()
            )));
        }
        if !self.intercept().is_finite() || self.params().iter().any(|p| !p.is_finite()) {
            return Err(StructureError::new("a coefficient is not finite"));
        }
        let labels = self.labels();
        if labels.pos.class == labels.neg.class {
            return Err(StructureError::new("the positive and negative class are the same"));
        }
        Ok(())
    }

    fn dependencies() -> Vec<(&'static str, &'static str)> {
        super::dependencies()
    }
}
