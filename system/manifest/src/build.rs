//! what a build script calls to generate the manifest's constants.
//!
//! the files are `system/llm-os.system` and `system/policy.toml` of the
//! repository, or the paths in `LLM_OS_SYSTEM` and `LLM_OS_POLICY` (the
//! same variable policy-verifier's build reads, so every crate of one build
//! sees the same policy).

use std::path::{Path, PathBuf};

use crate::{codegen, Manifest, ManifestError};

/// the environment variable naming another .system file.
pub const SYSTEM_ENV: &str = "LLM_OS_SYSTEM";
/// the environment variable naming another policy file.
pub const POLICY_ENV: &str = "LLM_OS_POLICY";

/// the repository root, from this crate's own location.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// the .system file and the policy file a build uses.
pub fn paths() -> (PathBuf, PathBuf) {
    let root = repo_root();
    let system = std::env::var_os(SYSTEM_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("system/llm-os.system"));
    let policy = std::env::var_os(POLICY_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("system/policy.toml"));
    (system, policy)
}

/// load the manifest a build uses.
pub fn load() -> Result<Manifest, ManifestError> {
    let (system, policy) = paths();
    Manifest::load(&system, &policy)
}

/// for a build script: write `system.rs` and `policy.rs` into `OUT_DIR`, or
/// fail the build with `file:line: reason`.
pub fn generate_for_build_script() {
    let (system, policy) = paths();
    println!("cargo:rerun-if-env-changed={SYSTEM_ENV}");
    println!("cargo:rerun-if-env-changed={POLICY_ENV}");
    println!("cargo:rerun-if-changed={}", system.display());
    println!("cargo:rerun-if-changed={}", policy.display());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let result = Manifest::load(&system, &policy).and_then(|m| {
        let sys = codegen::system_rs(&m)?;
        let pol = codegen::policy_rs(&m);
        let write = |name: &str, text: &str| {
            std::fs::write(out.join(name), text).map_err(|e| ManifestError {
                file: out.join(name),
                line: 0,
                message: format!("cannot write: {e}"),
            })
        };
        write("system.rs", &sys)?;
        write("policy.rs", &pol)
    });
    if let Err(e) = result {
        eprintln!("error: the manifest does not build: {e}");
        std::process::exit(1);
    }
}
