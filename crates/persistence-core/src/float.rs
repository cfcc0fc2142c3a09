//! Floats that survive JSON: in human-readable formats, NaN and the
//! infinities are written as the strings `"NaN"`, `"inf"` and `"-inf"`
//! (JSON has no such numbers, and `serde_json` would write `null`). Binary
//! formats, such as the bundle header's MessagePack, keep native floats.
//! Reading also accepts `null` as NaN, for cards written by other tools.

use std::collections::BTreeMap;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// An `f64` with the representation above.
#[derive(Debug, Clone, Copy)]
#[repr(transparent)]
pub(crate) struct F(pub(crate) f64);

impl Serialize for F {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if s.is_human_readable() && !v.is_finite() {
            s.serialize_str(if v.is_nan() {
                "NaN"
            } else if v > 0.0 {
                "inf"
            } else {
                "-inf"
            })
        } else {
            s.serialize_f64(v)
        }
    }
}

struct FVisitor;

impl Visitor<'_> for FVisitor {
    type Value = F;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a number, \"NaN\", \"inf\", \"-inf\" or null")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<F, E> {
        Ok(F(v))
    }
    fn visit_f32<E: de::Error>(self, v: f32) -> Result<F, E> {
        Ok(F(f64::from(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<F, E> {
        Ok(F(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<F, E> {
        Ok(F(v as f64))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<F, E> {
        match v {
            "NaN" | "nan" => Ok(F(f64::NAN)),
            "inf" | "+inf" | "Infinity" => Ok(F(f64::INFINITY)),
            "-inf" | "-Infinity" => Ok(F(f64::NEG_INFINITY)),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<F, E> {
        Ok(F(f64::NAN))
    }
    fn visit_none<E: de::Error>(self) -> Result<F, E> {
        Ok(F(f64::NAN))
    }
}

impl<'de> Deserialize<'de> for F {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<F, D::Error> {
        d.deserialize_any(FVisitor)
    }
}

pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    F(*v).serialize(s)
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    F::deserialize(d).map(|f| f.0)
}

pub(crate) mod vec {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[f64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|x| F(*x)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<F>::deserialize(d)?.into_iter().map(|f| f.0).collect())
    }
}

pub(crate) mod rows {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &[Vec<f64>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|row| row.iter().map(|x| F(*x)).collect::<Vec<F>>()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f64>>, D::Error> {
        Ok(Vec::<Vec<F>>::deserialize(d)?
            .into_iter()
            .map(|row| row.into_iter().map(|f| f.0).collect())
            .collect())
    }
}

pub(crate) mod map {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, x)| (k, F(*x))))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        Ok(BTreeMap::<String, F>::deserialize(d)?
            .into_iter()
            .map(|(k, f)| (k, f.0))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct T {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::vec")]
        v: Vec<f64>,
    }

    #[test]
    fn non_finite_floats_survive_json_and_msgpack() {
        let t = T {
            x: f64::INFINITY,
            v: vec![f64::NAN, f64::NEG_INFINITY, 1.5],
        };
        let json = serde_json::to_string(&t).expect("json");
        assert_eq!(json, r#"{"x":"inf","v":["NaN","-inf",1.5]}"#);
        let back: T = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.x, f64::INFINITY);
        assert!(back.v[0].is_nan() && back.v[1] == f64::NEG_INFINITY && back.v[2] == 1.5);
        let packed = rmp_serde::to_vec_named(&t).expect("msgpack");
        let back: T = rmp_serde::from_slice(&packed).expect("unpack");
        assert_eq!(back.x, f64::INFINITY);
        let from_null: T = serde_json::from_str(r#"{"x":null,"v":[null, 2]}"#).expect("null is NaN");
        assert!(from_null.x.is_nan() && from_null.v[1] == 2.0);
    }
}
