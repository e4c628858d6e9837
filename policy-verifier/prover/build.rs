//! points the prover's tests and benches at libz3 with an rpath, and says
//! plainly what to do when libz3 is not where scripts/z3-env.sh puts it.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=Z3_LIBRARY_PATH_OVERRIDE");
    let Ok(dir) = env::var("Z3_LIBRARY_PATH_OVERRIDE") else {
        // a system z3 found by pkg-config or the linker's default path.
        return;
    };
    if !Path::new(&dir).join("libz3.so").exists() {
        println!(
            "cargo:warning=libz3.so is not in `{dir}`: run `. scripts/z3-env.sh` (it unpacks the pinned z3-solver wheel into .cache/z3-5.4.1)"
        );
        std::process::exit(1);
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
}
