//! Numeric arrays as raw little-endian blobs in the payload.
//!
//! A `Vec<f64>` serialised field by field is a MessagePack array of floats:
//! each value a marker and eight big-endian bytes, decoded one at a time
//! into a vector that grows by doubling. A blob is one MessagePack `bin`
//! holding the values' little-endian bytes, decoded with one copy at memory
//! speed (the bytes are borrowed from the payload buffer, never copied in
//! between). Use it on any numeric field of your own [`Model`](crate::Model)
//! with serde's `with`:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Weights {
//!     #[serde(with = "model_persistence_core::blob")]
//!     dense: Vec<f64>,
//!     #[serde(with = "model_persistence_core::blob")]
//!     indices: Vec<u32>,
//!     #[serde(with = "model_persistence_core::blob::array")]
//!     matrix: ndarray::Array2<f32>,
//! }
//!
//! let w = Weights {
//!     dense: vec![0.5, -1.0],
//!     indices: vec![3, 1],
//!     matrix: ndarray::array![[1.0, 2.0], [3.0, 4.0]],
//! };
//! let bytes = rmp_serde::to_vec_named(&w).unwrap();
//! let back: Weights = rmp_serde::from_slice(&bytes).unwrap();
//! assert_eq!(back.dense, w.dense);
//! assert_eq!(back.matrix, w.matrix);
//! ```
//!
//! A field that switches to a blob still reads its earlier layout: the
//! deserialiser also takes a sequence of numbers (and, for [`array`](mod@array),
//! ndarray's own `{v, dim, data}` map), so bundles written before the
//! switch keep loading. Bundles holding blobs are written as format 1.1
//! (see `docs/format.md`).
//!
//! A blob whose length is not a whole number of values is refused with a
//! decode error naming the element type; a blob is never larger than the
//! payload it is borrowed from, so decoding allocates nothing unbounded.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serializer};

mod sealed {
    pub trait Sealed {}
}

/// A number stored in a blob: the fixed-width integers and the floats.
pub trait Element: bytemuck::Pod + for<'de> Deserialize<'de> + sealed::Sealed {
    /// The type's name in error messages.
    const NAME: &'static str;
}

macro_rules! elements {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Element for $t {
            const NAME: &'static str = stringify!($t);
        }
    )*};
}
elements!(f64, f32, i64, u64, i32, u32, i16, u16, i8, u8);

/// Writes `values` as one `bin` of their little-endian bytes.
///
/// # Errors
///
/// Those of the serializer.
pub fn serialize<T: Element, V: AsRef<[T]> + ?Sized, S: Serializer>(values: &V, s: S) -> Result<S::Ok, S::Error> {
    let values = values.as_ref();
    if cfg!(target_endian = "little") {
        s.serialize_bytes(bytemuck::cast_slice(values))
    } else {
        let mut bytes = bytemuck::cast_slice::<T, u8>(values).to_vec();
        bytes
            .chunks_exact_mut(std::mem::size_of::<T>())
            .for_each(<[u8]>::reverse);
        s.serialize_bytes(&bytes)
    }
}

/// Reads a blob written by [`serialize`], or a sequence of numbers (the
/// layout of a plain `Vec<T>`).
///
/// # Errors
///
/// A blob whose length is not a multiple of the element's width, or what
/// the deserializer reports.
pub fn deserialize<'de, T: Element, D: Deserializer<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    d.deserialize_any(BlobVisitor(PhantomData))
}

/// Decodes little-endian bytes into values: one copy into a zeroed
/// (lazily allocated) vector.
///
/// # Errors
///
/// A message if `bytes` is not a whole number of values.
pub fn from_le_bytes<T: Element>(bytes: &[u8]) -> Result<Vec<T>, String> {
    let width = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(width) {
        return Err(format!(
            "a blob of {} bytes is not a whole number of {} ({width} bytes each)",
            bytes.len(),
            T::NAME
        ));
    }
    let mut values: Vec<T> = crate::memory::zeroed_vec(bytes.len() / width);
    let out: &mut [u8] = bytemuck::cast_slice_mut(&mut values);
    out.copy_from_slice(bytes);
    if cfg!(target_endian = "big") {
        out.chunks_exact_mut(width).for_each(<[u8]>::reverse);
    }
    Ok(values)
}

struct BlobVisitor<T>(PhantomData<T>);

impl<'de, T: Element> Visitor<'de> for BlobVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a blob of little-endian {} or a sequence of them", T::NAME)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<T>, E> {
        from_le_bytes(v).map_err(E::custom)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        // The hint comes from the file: it bounds nothing, so it only
        // pre-sizes up to a modest length.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(out)
    }
}

/// ndarray arrays of any dimension as `(shape, blob)`.
///
/// Reads also ndarray's own serde layout (a map `{v, dim, data}`), so a
/// field that was a plain ndarray array keeps reading its earlier bundles.
pub mod array {
    use super::*;
    use ndarray::{Array, Dimension, IxDyn};
    use serde::de::MapAccess;
    use serde::ser::SerializeTuple;

    /// Writes the array's shape and its elements in row-major order as one
    /// blob.
    ///
    /// # Errors
    ///
    /// Those of the serializer.
    pub fn serialize<T: Element, D: Dimension, S: Serializer>(a: &Array<T, D>, s: S) -> Result<S::Ok, S::Error> {
        let shape: Vec<u64> = a.shape().iter().map(|&n| n as u64).collect();
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&shape)?;
        match a.as_slice() {
            Some(values) => t.serialize_element(&Blob(values))?,
            None => t.serialize_element(&Blob(&a.iter().copied().collect::<Vec<T>>()))?,
        }
        t.end()
    }

    /// Reads what [`serialize`] wrote, or ndarray's own layout.
    ///
    /// # Errors
    ///
    /// A shape of the wrong rank, a shape whose product is not the number
    /// of values (or overflows), or what the deserializer reports.
    pub fn deserialize<'de, T: Element, D: Dimension + Deserialize<'de>, De: Deserializer<'de>>(
        d: De,
    ) -> Result<Array<T, D>, De::Error> {
        d.deserialize_any(ArrayVisitor(PhantomData))
    }

    struct Blob<'a, T>(&'a [T]);

    impl<T: Element> serde::Serialize for Blob<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, s)
        }
    }

    struct Values<T>(Vec<T>);

    impl<'de, T: Element> Deserialize<'de> for Values<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::deserialize(d).map(Values)
        }
    }

    struct ArrayVisitor<T, D>(PhantomData<(T, D)>);

    impl<'de, T: Element, D: Dimension + Deserialize<'de>> Visitor<'de> for ArrayVisitor<T, D> {
        type Value = Array<T, D>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "an array of {} as (shape, blob)", T::NAME)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let shape: Vec<u64> = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
            let Values(values) = seq
                .next_element::<Values<T>>()?
                .ok_or_else(|| de::Error::invalid_length(1, &self))?;
            shaped(&shape, values).map_err(de::Error::custom)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Array::<T, D>::deserialize(de::value::MapAccessDeserializer::new(map))
        }
    }

    fn shaped<T: Element, D: Dimension>(shape: &[u64], values: Vec<T>) -> Result<Array<T, D>, String> {
        if let Some(ndim) = D::NDIM {
            if shape.len() != ndim {
                return Err(format!("a shape of {} axes for an array of {ndim}", shape.len()));
            }
        }
        let dims = shape
            .iter()
            .map(|&n| usize::try_from(n).map_err(|_| format!("an axis of {n} elements")))
            .collect::<Result<Vec<usize>, String>>()?;
        let count = dims
            .iter()
            .try_fold(1_usize, |acc, &n| acc.checked_mul(n))
            .ok_or_else(|| format!("the shape {shape:?} overflows"))?;
        if count != values.len() {
            return Err(format!(
                "the shape {shape:?} holds {count} values, the blob {}",
                values.len()
            ));
        }
        Array::from_shape_vec(IxDyn(&dims), values)
            .map_err(|e| e.to_string())?
            .into_dimensionality::<D>()
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Serialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Blobs {
        #[serde(with = "crate::blob")]
        f: Vec<f64>,
        #[serde(with = "crate::blob")]
        s: Vec<f32>,
        #[serde(with = "crate::blob")]
        i: Vec<i64>,
        #[serde(with = "crate::blob")]
        u: Vec<u16>,
        #[serde(with = "crate::blob::array")]
        m: ndarray::Array2<f64>,
        #[serde(with = "crate::blob::array")]
        d: ndarray::ArrayD<i32>,
    }

    /// The same fields in their plain serde layout: what a model wrote
    /// before it switched to blobs.
    #[derive(Serialize)]
    struct Plain {
        f: Vec<f64>,
        s: Vec<f32>,
        i: Vec<i64>,
        u: Vec<u16>,
        m: ndarray::Array2<f64>,
        d: ndarray::ArrayD<i32>,
    }

    fn sample() -> Blobs {
        Blobs {
            f: vec![0.1, -0.0, f64::NAN, f64::INFINITY, f64::MIN_POSITIVE],
            s: vec![1.5, -2.25],
            i: vec![i64::MIN, -1, 0, i64::MAX],
            u: vec![7, 65_535],
            m: ndarray::array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]],
            d: ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 1, 2]), vec![1, 2, 3, 4]).unwrap(),
        }
    }

    fn same(a: &Blobs, b: &Blobs) {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.f), bits(&b.f));
        assert_eq!((&a.s, &a.i, &a.u, &a.m, &a.d), (&b.s, &b.i, &b.u, &b.m, &b.d));
    }

    #[test]
    fn blobs_round_trip_bit_for_bit_and_are_one_bin_each() {
        let v = sample();
        let bytes = rmp_serde::to_vec_named(&v).unwrap();
        same(&rmp_serde::from_slice::<Blobs>(&bytes).unwrap(), &v);
        // 5 floats: a bin8 marker, its length, 40 bytes of little-endian values.
        let mut expected = vec![0xc4, 40];
        v.f.iter().for_each(|x| expected.extend_from_slice(&x.to_le_bytes()));
        assert!(bytes.windows(expected.len()).any(|w| w == expected.as_slice()));
    }

    #[test]
    fn the_plain_layout_still_reads() {
        let v = sample();
        let plain = Plain {
            f: v.f.clone(),
            s: v.s.clone(),
            i: v.i.clone(),
            u: v.u.clone(),
            m: v.m.clone(),
            d: v.d.clone(),
        };
        let bytes = rmp_serde::to_vec_named(&plain).unwrap();
        same(&rmp_serde::from_slice::<Blobs>(&bytes).unwrap(), &v);
    }

    #[test]
    fn a_non_contiguous_array_is_written_in_row_major_order() {
        let t = ndarray::array![[1.0, 2.0], [3.0, 4.0]].reversed_axes();
        #[derive(Serialize, Deserialize)]
        struct One(#[serde(with = "crate::blob::array")] ndarray::Array2<f64>);
        let back: One = rmp_serde::from_slice(&rmp_serde::to_vec(&One(t.clone())).unwrap()).unwrap();
        assert_eq!(back.0, t);
    }

    #[test]
    fn a_ragged_blob_or_a_wrong_shape_is_refused() {
        #[derive(Debug, Deserialize)]
        struct F(
            #[allow(dead_code)]
            #[serde(with = "crate::blob")]
            Vec<f64>,
        );
        #[derive(Debug, Deserialize)]
        struct A(
            #[allow(dead_code)]
            #[serde(with = "crate::blob::array")]
            ndarray::Array2<f64>,
        );
        let ragged = rmp_serde::to_vec(&serde_bytes_like(&[0_u8; 12])).unwrap();
        let e = rmp_serde::from_slice::<F>(&ragged).unwrap_err().to_string();
        assert!(e.contains("not a whole number of f64"), "{e}");
        for shape in [vec![2_u64, 3], vec![2], vec![u64::MAX, 2]] {
            let bytes = rmp_serde::to_vec(&(shape.clone(), serde_bytes_like(&[0_u8; 32]))).unwrap();
            assert!(rmp_serde::from_slice::<A>(&bytes).is_err(), "shape {shape:?} accepted");
        }
    }

    /// Bytes that serialise as a MessagePack `bin`.
    fn serde_bytes_like(b: &[u8]) -> impl Serialize + '_ {
        struct B<'a>(&'a [u8]);
        impl Serialize for B<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(self.0)
            }
        }
        B(b)
    }
}
