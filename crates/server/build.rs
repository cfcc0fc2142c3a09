//! Compiles the Open Inference Protocol's gRPC service
//! (`proto/grpc_predict_v2.proto`) with protox, a protobuf compiler in
//! Rust: no `protoc` is needed to build the crate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpc_predict_v2.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        // Malformed messages are the client's fault: INVALID_ARGUMENT, not
        // the INTERNAL of prost's codec.
        .codec_path("crate::grpc::codec::Codec")
        .compile_fds(descriptors)?;
    Ok(())
}
