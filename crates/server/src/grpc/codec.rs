//! The protobuf codec of the gRPC service: prost's, except that a message
//! that does not decode is the client's error (`INVALID_ARGUMENT`), where
//! prost's codec answers `INTERNAL`.

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstDecoder, ProstEncoder};

/// The codec the generated service uses (`codec_path` in `build.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ClientErrors<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ClientErrors(ProstDecoder::new(BufferSettings::default()))
    }
}

/// prost's decoder, whose refusals are `INVALID_ARGUMENT`.
#[derive(Debug)]
pub(crate) struct ClientErrors<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for ClientErrors<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0
            .decode(buf)
            .map_err(|e| Status::invalid_argument(format!("the request is not a valid message: {}", e.message())))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}
