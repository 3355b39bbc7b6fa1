fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "../../proto/wharf/cluster/v1/raft.proto",
        "../../proto/wharf/cluster/v1/cluster.proto",
        "../../proto/wharf/cluster/v1/chunks.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    // Chunk bytes travel as `Bytes`: one buffer shared by every replica's request.
    tonic_prost_build::configure()
        .bytes(".wharf.cluster.v1.PutChunkRequest.data")
        .bytes(".wharf.cluster.v1.ChunkData.data")
        .compile_protos(&protos, &["../../proto"])?;
    Ok(())
}
