//! what every subcommand shares: exit codes, the policy, the key, input files.

use std::path::Path;

use policy_verifier::json::{self, InputError};
use policy_verifier::{Policy, DEFAULT_POLICY};
use serde_json::Value;

/// exit codes of DESIGN.md: 0 approved / ok, 1 rejected / failed, 2 bad input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// approved, proved, done.
    Ok = 0,
    /// rejected by the verifier, or a proof failed.
    Rejected = 1,
    /// the input is not a well-formed plan, state, policy or key.
    BadInput = 2,
}

/// the dev-only confirmation key (system/dev-confirm.key), compiled in so the
/// binary works from any directory. never use it outside a dev setup.
pub const DEV_KEY_HEX: &str = include_str!("../../system/dev-confirm.key");

/// prints `{"error":…}` on stdout and returns the bad-input exit code.
pub fn bad_input(e: &InputError) -> Exit {
    println!("{}", e.to_json());
    Exit::BadInput
}

/// prints a json value on stdout, compact.
pub fn print_json(v: &Value) {
    println!("{v}");
}

/// reads a file or `-` (stdin) as bytes; a missing file is bad input.
pub fn read_input(path: &Path) -> Result<Vec<u8>, InputError> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf)
            .map_err(|e| InputError::new("io", format!("cannot read stdin: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| InputError::new("io", format!("cannot read `{}`: {e}", path.display())))
}

/// the policy from `--policy`, or the built-in default (system/policy.toml).
pub fn load_policy(path: Option<&Path>) -> Result<Policy, InputError> {
    match path {
        None => Ok(DEFAULT_POLICY),
        Some(p) => {
            let bytes = read_input(p)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| InputError::new("policy.syntax", format!("`{}` is not utf-8", p.display())))?;
            json::parse_policy(&text)
        }
    }
}

/// the confirmation key from `--key-file` (hex), or the dev key.
pub fn load_key(path: Option<&Path>) -> Result<[u8; 32], InputError> {
    let text = match path {
        None => DEV_KEY_HEX.to_string(),
        Some(p) => String::from_utf8_lossy(&read_input(p)?).into_owned(),
    };
    json::unhex32(text.trim()).ok_or_else(|| InputError::new("key.invalid", "a key file holds 64 hex digits (32 bytes)"))
}
