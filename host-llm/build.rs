//! llmsh links libz3 through policy-prover: give the binary an rpath to the
//! directory scripts/z3-env.sh unpacks it into (see .cargo/config.toml), so
//! `llmsh prove` runs without LD_LIBRARY_PATH.

fn main() {
    println!("cargo:rerun-if-env-changed=Z3_LIBRARY_PATH_OVERRIDE");
    if let Ok(dir) = std::env::var("Z3_LIBRARY_PATH_OVERRIDE") {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{dir}");
    }
}
