//! A/B splits: variants with weights, sticky by request key.

use std::sync::atomic::{AtomicU64, Ordering};

use model_persistence_core::Loadable;
use ndarray::ArrayView2;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::hot_swap::{ModelServer, Prediction};

/// A split of traffic between variants, each a [`ModelServer`] (a version
/// or an alias). The same key always goes to the same variant.
#[derive(Debug)]
pub struct AbSplit<M: Loadable> {
    variants: Vec<Variant<M>>,
    total_weight: u64,
    salt: u64,
}

#[derive(Debug)]
struct Variant<M: Loadable> {
    name: String,
    server: ModelServer<M>,
    weight: u64,
    served: AtomicU64,
}

/// Requests answered by one variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VariantCount {
    /// The variant's name.
    pub name: String,
    /// Its weight.
    pub weight: u64,
    /// Requests it answered.
    pub served: u64,
}

impl<M> AbSplit<M>
where
    M: Loadable,
{
    /// A split between `(name, server, weight)` variants. `salt` changes
    /// the assignment of keys without changing the shares.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSplit`] without variants or with a total weight of 0.
    pub fn new(variants: impl IntoIterator<Item = (String, ModelServer<M>, u64)>, salt: u64) -> Result<Self> {
        let variants: Vec<Variant<M>> = variants
            .into_iter()
            .map(|(name, server, weight)| Variant {
                name,
                server,
                weight,
                served: AtomicU64::new(0),
            })
            .collect();
        let total_weight = variants.iter().map(|v| v.weight).fold(0_u64, u64::saturating_add);
        if variants.is_empty() || total_weight == 0 {
            return Err(Error::InvalidSplit {
                reason: "no variant has a positive weight".into(),
            });
        }
        Ok(AbSplit {
            variants,
            total_weight,
            salt,
        })
    }

    /// The variant a key is assigned to.
    pub fn assign(&self, key: &str) -> &str {
        &self.variants[self.index(key)].name
    }

    fn index(&self, key: &str) -> usize {
        let mut point = key_hash(key, self.salt) % self.total_weight;
        for (i, v) in self.variants.iter().enumerate() {
            if point < v.weight {
                return i;
            }
            point -= v.weight;
        }
        self.variants.len() - 1
    }

    /// Predicts with the variant `key` is assigned to.
    ///
    /// # Errors
    ///
    /// That variant's [`ModelServer::predict`] error.
    pub fn predict(&self, key: &str, rows: ArrayView2<'_, f64>) -> Result<(&str, Prediction<M::Output>)> {
        let v = &self.variants[self.index(key)];
        let p = v.server.predict(rows)?;
        v.served.fetch_add(1, Ordering::Relaxed);
        Ok((&v.name, p))
    }

    /// [`predict`](Self::predict) with the variant's scores
    /// ([`ModelServer::predict_scored`]).
    ///
    /// # Errors
    ///
    /// Those of [`ModelServer::predict_scored`].
    pub fn predict_scored(&self, key: &str, rows: ArrayView2<'_, f64>) -> Result<(&str, Prediction<M::Output>)> {
        let v = &self.variants[self.index(key)];
        let p = v.server.predict_scored(rows)?;
        v.served.fetch_add(1, Ordering::Relaxed);
        Ok((&v.name, p))
    }

    /// The variants' names and servers, in the order given.
    pub fn variants(&self) -> impl Iterator<Item = (&str, &ModelServer<M>)> {
        self.variants.iter().map(|v| (v.name.as_str(), &v.server))
    }

    /// Requests per variant.
    pub fn counts(&self) -> Vec<VariantCount> {
        self.variants
            .iter()
            .map(|v| VariantCount {
                name: v.name.clone(),
                weight: v.weight,
                served: v.served.load(Ordering::Relaxed),
            })
            .collect()
    }
}

/// FNV-1a over the key and salt, finished with SplitMix64's mixer so that
/// similar keys spread evenly.
fn key_hash(key: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}
