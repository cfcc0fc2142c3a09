//! Typed tensors: what a request carries in and a response carries out,
//! decoded once whatever the protocol (JSON numbers, the binary tensor
//! extension, gRPC's raw contents).

use ndarray::Array2;

use super::error::InferError;

/// The Open Inference Protocol's element types that hold numbers (`BYTES`
/// holds strings, which a model of numbers does not take).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Datatype {
    /// `BOOL`, one byte per element.
    Bool,
    /// `UINT8`.
    Uint8,
    /// `UINT16`.
    Uint16,
    /// `UINT32`.
    Uint32,
    /// `UINT64`.
    Uint64,
    /// `INT8`.
    Int8,
    /// `INT16`.
    Int16,
    /// `INT32`.
    Int32,
    /// `INT64`.
    Int64,
    /// `FP16` (IEEE half precision).
    Fp16,
    /// `FP32`.
    Fp32,
    /// `FP64`.
    Fp64,
}

const ALL: [Datatype; 12] = [
    Datatype::Bool,
    Datatype::Uint8,
    Datatype::Uint16,
    Datatype::Uint32,
    Datatype::Uint64,
    Datatype::Int8,
    Datatype::Int16,
    Datatype::Int32,
    Datatype::Int64,
    Datatype::Fp16,
    Datatype::Fp32,
    Datatype::Fp64,
];

impl Datatype {
    /// The protocol's name (`FP32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
        }
    }

    /// The element type of input `input` named `name` by a request.
    ///
    /// # Errors
    ///
    /// [`InferError`] (invalid argument) for `BYTES` and unknown names.
    pub fn of_input(input: &str, name: &str) -> Result<Self, InferError> {
        if name == "BYTES" {
            return Err(InferError::invalid(format!(
                "input {input:?} is BYTES: the model takes numbers"
            )));
        }
        ALL.into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| InferError::invalid(format!("input {input:?} has unknown datatype {name:?}")))
    }

    /// Bytes per element.
    pub fn width(self) -> usize {
        match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => 2,
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
        }
    }

    /// Whether the elements are integers (booleans included).
    pub fn is_integer(self) -> bool {
        !matches!(self, Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64)
    }

    /// Little-endian elements, as the binary tensor extension and gRPC's
    /// raw contents carry them, as the numbers a model reads. NaN and
    /// infinities pass as they are: the model's checks decide.
    ///
    /// # Errors
    ///
    /// [`InferError`] (invalid argument) for bytes that are not a whole
    /// number of elements.
    pub fn decode_le(self, input: &str, bytes: &[u8]) -> Result<Vec<f64>, InferError> {
        fn each<const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> f64) -> Vec<f64> {
            bytes
                .chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect()
        }
        if !bytes.len().is_multiple_of(self.width()) {
            return Err(InferError::invalid(format!(
                "input {input:?}: {} bytes is not a whole number of {} elements",
                bytes.len(),
                self.name()
            )));
        }
        Ok(match self {
            Datatype::Bool | Datatype::Uint8 => each::<1>(bytes, |a| f64::from(a[0])),
            Datatype::Int8 => each::<1>(bytes, |a| f64::from(i8::from_le_bytes(a))),
            Datatype::Int16 => each::<2>(bytes, |a| f64::from(i16::from_le_bytes(a))),
            Datatype::Uint16 => each::<2>(bytes, |a| f64::from(u16::from_le_bytes(a))),
            Datatype::Fp16 => each::<2>(bytes, |a| half_to_f64(u16::from_le_bytes(a))),
            Datatype::Int32 => each::<4>(bytes, |a| f64::from(i32::from_le_bytes(a))),
            Datatype::Uint32 => each::<4>(bytes, |a| f64::from(u32::from_le_bytes(a))),
            Datatype::Fp32 => each::<4>(bytes, |a| f64::from(f32::from_le_bytes(a))),
            Datatype::Int64 => each::<8>(bytes, |a| i64::from_le_bytes(a) as f64),
            Datatype::Uint64 => each::<8>(bytes, |a| u64::from_le_bytes(a) as f64),
            Datatype::Fp64 => each::<8>(bytes, f64::from_le_bytes),
        })
    }
}

/// An IEEE 754 half-precision value, exactly.
fn half_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        e => sign * (1.0 + fraction / 1024.0) * 2f64.powi(e - 15),
    }
}

/// An input tensor: its numbers, decoded once, in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTensor {
    /// Its name.
    pub name: String,
    /// The element type the request declared.
    pub datatype: Datatype,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: Vec<f64>,
}

impl InputTensor {
    /// A tensor whose elements are as many as its shape says.
    ///
    /// # Errors
    ///
    /// [`InferError`] (invalid argument) for a negative dimension, a shape
    /// whose size overflows, or data of another length.
    pub fn new(name: String, datatype: Datatype, shape: &[i64], data: Vec<f64>) -> Result<Self, InferError> {
        let mut dims = Vec::with_capacity(shape.len());
        let mut expected: usize = 1;
        for &d in shape {
            let d = usize::try_from(d)
                .map_err(|_| InferError::invalid(format!("input {name:?} has a negative dimension {d}")))?;
            expected = expected
                .checked_mul(d)
                .ok_or_else(|| InferError::invalid(format!("input {name:?} has an impossible shape")))?;
            dims.push(d);
        }
        if data.len() != expected {
            return Err(InferError::invalid(format!(
                "input {name:?} has shape {shape:?} ({expected} elements) but {} elements of data",
                data.len()
            )));
        }
        Ok(InputTensor {
            name,
            datatype,
            shape: dims,
            data,
        })
    }
}

/// The elements of an output tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputData {
    /// Class labels (`INT64`).
    Int64(Vec<i64>),
    /// Values and probabilities (`FP64`).
    Fp64(Vec<f64>),
    /// Class names, for a model whose labels index names (`BYTES`).
    Bytes(Vec<String>),
}

impl OutputData {
    /// The protocol's element type.
    pub fn datatype(&self) -> &'static str {
        match self {
            OutputData::Int64(_) => "INT64",
            OutputData::Fp64(_) => "FP64",
            OutputData::Bytes(_) => "BYTES",
        }
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            OutputData::Int64(v) => v.len(),
            OutputData::Fp64(v) => v.len(),
            OutputData::Bytes(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An output tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputTensor {
    /// Its name: `predict` or `predict_proba`.
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// Its elements, row-major.
    pub data: OutputData,
}

/// The rows a model reads from a request's inputs: one tensor of shape
/// `[rows, n_features]` (or `[n_features]`, one row), or one column tensor
/// per feature (`[rows]` or `[rows, 1]`, in feature order).
///
/// # Errors
///
/// [`InferError`] (invalid argument) saying which input does not fit.
pub fn rows_of(mut inputs: Vec<InputTensor>, n_features: usize) -> Result<Array2<f64>, InferError> {
    match inputs.len() {
        0 => Err(InferError::invalid("the request has no inputs")),
        1 => {
            let input = inputs.pop().unwrap_or_else(|| unreachable!("one input"));
            let (rows, cols) = match input.shape.as_slice() {
                [cols] => (1, *cols),
                [rows, cols] => (*rows, *cols),
                other => {
                    return Err(InferError::invalid(format!(
                        "input {:?} has shape {other:?}: expected [rows, {n_features}] or [{n_features}]",
                        input.name
                    )))
                }
            };
            if cols != n_features {
                return Err(InferError::invalid(format!(
                    "input {:?} has {cols} features per row: the model takes {n_features}",
                    input.name
                )));
            }
            // The decoded elements become the rows without a copy.
            Array2::from_shape_vec((rows, cols), input.data).map_err(|e| InferError::invalid(e.to_string()))
        }
        many => {
            if many != n_features {
                return Err(InferError::invalid(format!(
                    "{many} inputs given as columns: the model takes {n_features} features"
                )));
            }
            let rows = inputs[0].data.len();
            for input in &inputs {
                let column = matches!(input.shape.as_slice(), [r] | [r, 1] if *r == rows);
                if !column || input.data.len() != rows {
                    return Err(InferError::invalid(format!(
                        "input {:?} has shape {:?}: as one of several inputs it must be a column [{rows}] or [{rows}, 1]",
                        input.name, input.shape
                    )));
                }
            }
            Ok(Array2::from_shape_fn((rows, n_features), |(r, c)| inputs[c].data[r]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_decodes_exactly() {
        let cases: [(u16, f64); 7] = [
            (0x3c00, 1.0),
            (0xc000, -2.0),
            (0x3555, 0.333_251_953_125),
            (0x0001, 2f64.powi(-24)),
            (0x7bff, 65_504.0),
            (0x7c00, f64::INFINITY),
            (0x0000, 0.0),
        ];
        for (bits, want) in cases {
            assert_eq!(half_to_f64(bits), want, "{bits:#06x}");
        }
        assert!(half_to_f64(0x7e00).is_nan());
    }

    #[test]
    fn little_endian_elements_decode_by_their_type() {
        let bytes: Vec<u8> = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(Datatype::Fp32.decode_le("x", &bytes), Ok(vec![1.5, -2.0]));
        assert_eq!(Datatype::Int8.decode_le("x", &[0xff, 3]), Ok(vec![-1.0, 3.0]));
        let refused = Datatype::Fp64
            .decode_le("x", &[0; 12])
            .expect_err("12 bytes are not FP64s");
        assert_eq!(refused.kind, super::super::ErrorKind::InvalidArgument);
        assert!(refused.message.contains("not a whole number"), "{refused}");
    }

    #[test]
    fn one_tensor_becomes_the_rows_without_a_copy() {
        let data = vec![1.0, 2.0, 3.0, 4.0];
        let at = data.as_ptr();
        let input = InputTensor::new("x".into(), Datatype::Fp64, &[2, 2], data).expect("fits");
        let rows = rows_of(vec![input], 2).expect("rows");
        assert_eq!(rows.as_ptr(), at, "the elements moved, not copied");
        assert_eq!(rows, ndarray::array![[1.0, 2.0], [3.0, 4.0]]);
    }

    #[test]
    fn columns_become_rows_and_misfits_are_named() {
        let col = |name: &str, v: Vec<f64>| {
            InputTensor::new(name.into(), Datatype::Fp64, &[v.len() as i64], v).expect("fits")
        };
        let rows = rows_of(vec![col("a", vec![1.0, 2.0]), col("b", vec![3.0, 4.0])], 2).expect("rows");
        assert_eq!(rows, ndarray::array![[1.0, 3.0], [2.0, 4.0]]);
        let e = rows_of(vec![col("a", vec![1.0, 2.0]), col("b", vec![3.0])], 2).expect_err("ragged");
        assert!(e.message.contains("\"b\""), "{e}");
        let e = InputTensor::new("x".into(), Datatype::Fp64, &[2, -1], vec![]).expect_err("negative");
        assert!(e.message.contains("negative"), "{e}");
    }
}
