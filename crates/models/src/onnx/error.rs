//! Why an ONNX graph cannot be used.

/// Why an ONNX graph cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxError {
    /// The bytes are not an ONNX model.
    #[error("not an ONNX model: {reason}")]
    Malformed {
        /// What the parser said.
        reason: String,
    },
    /// The graph keeps tensors in external data files, which a bundle does not carry.
    #[error("the graph keeps tensor {tensor:?} in an external data file; export it with the data inside the model")]
    ExternalData {
        /// The tensor.
        tensor: String,
    },
    /// The graph's inputs or outputs are not what this adapter runs.
    #[error("unsupported graph signature: {reason}")]
    Signature {
        /// Why.
        reason: String,
    },
    /// A tree ensemble that is not a sound tree: a child out of range or in
    /// another tree, a loop, a feature past the input width, attribute
    /// arrays of different lengths, a depth past [`MAX_TREE_DEPTH`](super::MAX_TREE_DEPTH).
    #[error("refused tree ensemble: {reason}")]
    Tree {
        /// What is wrong.
        reason: String,
    },
    /// The graph asks for more than any model needs: more nodes than
    /// [`MAX_GRAPH_NODES`](super::MAX_GRAPH_NODES), or a tensor (stored, or
    /// made by `ConstantOfShape` or `Expand` from a constant shape) of more
    /// than [`MAX_TENSOR_ELEMENTS`](super::MAX_TENSOR_ELEMENTS) elements.
    /// Refused before tract reads the graph, so it allocates nothing for it.
    #[error("refused graph: {reason}")]
    TooLarge {
        /// What is too large.
        reason: String,
    },
    /// tract cannot type-check, optimise or run the graph (an unknown
    /// operator, inconsistent shapes).
    #[error("tract cannot run the graph: {reason}")]
    Unsupported {
        /// What tract said.
        reason: String,
    },
}
