//! Compiles `proto/fedics_fl.proto` without a `protoc` binary: `protox` parses the file into a
//! descriptor set and `tonic-prost-build` generates the messages and the gRPC service.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/fedics_fl.proto");
    let fds = protox::compile(["fedics_fl.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".fedics.fl.v1.ModelChunk.data")
        .bytes(".fedics.fl.v1.UpdateChunk.data")
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
