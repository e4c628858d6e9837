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

/// this host's keys: the installation's (generated on first use, said on
/// stderr), or the public dev keys when `LLM_OS_DEV_KEYS=1` (tests only).
pub fn host_keys() -> Result<pd_interface::keys::Keys, InputError> {
    pd_interface::keys::store::host_keys(&mut |l| eprintln!("llmsh: {l}"))
        .map_err(|e| InputError::new("key.unavailable", e.to_string()))
}

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

/// the confirmation key from `--key-file` (hex, mode 0600), or this host's
/// ([`host_keys`]).
pub fn load_key(path: Option<&Path>) -> Result<[u8; 32], InputError> {
    match path {
        None => host_keys().map(|k| k.confirm),
        Some(p) => pd_interface::keys::store::read_key(p).map_err(|e| InputError::new("key.invalid", e.to_string())),
    }
}

/// the confirmation key of boot `epoch` (`auth::epoch_key`; epoch 0 is the
/// offline form `llmsh check` uses).
pub fn epoch_key(key: &[u8; 32], epoch: u64) -> [u8; 32] {
    policy_verifier::auth::epoch_key(key, epoch)
}
