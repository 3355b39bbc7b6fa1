fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../proto/wharf/cluster/v1/raft.proto",
        "../../proto/wharf/cluster/v1/cluster.proto",
        "../../proto/wharf/cluster/v1/chunks.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    tonic_prost_build::configure().compile_protos(&protos, &["../../proto"])?;
    Ok(())
}
