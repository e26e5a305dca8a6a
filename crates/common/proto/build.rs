//! Compiles the proto files with protox (pure Rust: no protoc binary to install).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "../../../proto";
    let files = ["chiron/v1/enclave.proto", "chiron/v1/host.proto"];
    for f in &files {
        println!("cargo:rerun-if-changed={root}/{f}");
    }
    let descriptors = protox::compile(files, [root])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
