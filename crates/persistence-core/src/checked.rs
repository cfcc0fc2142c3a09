//! A model whose input is checked before it reaches the model: the one
//! public road to a loaded model's predictions that cannot panic on input.
//!
//! [`Predictor::predict`] is what a model type implements, and it trusts its
//! rows: a linfa model given the wrong width panics inside ndarray, a
//! forest indexes past the row. [`Loaded::model`](crate::Loaded::model)
//! therefore hands out a [`CheckedModel`], whose own `predict`, `scores`
//! and `predict_scored` check the rows ([`check_rows`](crate::check_rows))
//! and return a `Result`. Being inherent, they are the ones a method call
//! finds first, even with `linfa::prelude::*` in scope (whose `Predict`
//! made `predict` ambiguous). Everything else of the model is reached
//! through `Deref`.

use std::ops::Deref;

use ndarray::{Array1, Array2, ArrayView2};

use crate::error::{check_rows, InputError};
use crate::model::{Model, Predictor, StructureError};

/// A model with the input width its structure was checked for.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "testing")] {
/// use model_persistence_testkit::LinearClassifier;
/// use model_persistence_core::{CheckedModel, InputError};
///
/// let model = CheckedModel::new(LinearClassifier { weights: vec![1.0, -1.0], bias: 0.0 }, 2)?;
/// assert_eq!(model.predict(ndarray::array![[2.0, 1.0]].view())?.to_vec(), vec![1]);
/// assert!(matches!(
///     model.predict(ndarray::array![[2.0, 1.0, 0.0]].view()),
///     Err(InputError::Width { expected: 2, found: 3 })
/// ));
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct CheckedModel<M> {
    model: M,
    width: usize,
}

impl<M> CheckedModel<M> {
    /// Wraps a model whose structure was checked for `width` columns
    /// (by a load).
    pub(crate) fn trusted(model: M, width: usize) -> Self {
        CheckedModel { model, width }
    }

    /// The number of columns its rows must have.
    pub fn input_width(&self) -> usize {
        self.width
    }

    /// The model itself, whose trait methods take rows unchecked.
    pub fn get(&self) -> &M {
        &self.model
    }

    /// The model itself.
    pub fn into_inner(self) -> M {
        self.model
    }
}

/// A checked model equals the model it holds.
impl<M: PartialEq> PartialEq<M> for CheckedModel<M> {
    fn eq(&self, other: &M) -> bool {
        self.model == *other
    }
}

impl<M> Deref for CheckedModel<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.model
    }
}

impl<M: Model> CheckedModel<M> {
    /// Checks the model's structure for rows of `width` columns (and its
    /// own feature count, where it records one).
    ///
    /// # Errors
    ///
    /// A [`StructureError`] saying what does not fit.
    pub fn new(model: M, width: usize) -> Result<Self, StructureError> {
        if let Some(n) = model.n_features() {
            if n != width {
                return Err(StructureError::new(format!(
                    "the model takes {n} features, not {width}"
                )));
            }
        }
        model.check_structure(width)?;
        Ok(CheckedModel { model, width })
    }
}

impl<M: Predictor> CheckedModel<M> {
    fn check(&self, rows: ArrayView2<'_, f64>) -> Result<(), InputError> {
        check_rows(rows, self.width, self.model.accepts_non_finite())
    }

    /// One output per row, after checking the rows.
    ///
    /// # Errors
    ///
    /// [`InputError`] for rows of the wrong width, or with a NaN or
    /// infinite value the model does not take.
    pub fn predict(&self, rows: ArrayView2<'_, f64>) -> Result<Array1<M::Output>, InputError> {
        self.check(rows)?;
        Ok(self.model.predict(rows))
    }

    /// The scores ([`Predictor::scores`]), after checking the rows.
    ///
    /// # Errors
    ///
    /// As [`predict`](Self::predict).
    pub fn scores(&self, rows: ArrayView2<'_, f64>) -> Result<Option<Array2<f64>>, InputError> {
        self.check(rows)?;
        Ok(self.model.scores(rows))
    }

    /// Outputs and scores in one pass ([`Predictor::predict_scored`]), after
    /// checking the rows.
    ///
    /// # Errors
    ///
    /// As [`predict`](Self::predict).
    #[allow(clippy::type_complexity)]
    pub fn predict_scored(
        &self,
        rows: ArrayView2<'_, f64>,
    ) -> Result<(Array1<M::Output>, Option<Array2<f64>>), InputError> {
        self.check(rows)?;
        Ok(self.model.predict_scored(rows))
    }
}
