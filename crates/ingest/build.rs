//! Compiles `proto/dnstap.proto` with protox (pure Rust, no `protoc` needed) and prost-build.
fn main() {
    println!("cargo:rerun-if-changed=proto/dnstap.proto");
    let fds =
        protox::compile(["proto/dnstap.proto"], ["proto"]).expect("proto/dnstap.proto compiles");
    prost_build::Config::new()
        .compile_fds(fds)
        .expect("prost-build generates dnstap code");
}
