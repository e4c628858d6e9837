//! what every subcommand shares: exit codes, the policy, the key, input files.

use std::path::Path;

use policy_verifier::json::{self, InputError};
use policy_verifier::{Policy, DEFAULT_POLICY};
use serde_json::Value;

use crate::code::Code;

pub use crate::code::Exit;

/// this host's keys: the installation's (generated on first use, said on
/// stderr), or the public dev keys when `LLM_OS_DEV_KEYS=1` (tests only).
pub fn host_keys() -> Result<pd_interface::keys::Keys, InputError> {
    pd_interface::keys::store::host_keys(&mut |l| eprintln!("llmsh: {l}"))
        .map_err(|e| Code::KeyUnavailable.err(e.to_string()))
}

/// prints `{"error":…}` on stdout and returns the exit code of its code's
/// class (`crate::code`).
pub fn report(e: &InputError) -> Exit {
    println!("{}", e.to_json());
    crate::code::exit_of(e.code)
}

/// prints a json value on stdout, compact.
pub fn print_json(v: &Value) {
    println!("{v}");
}

/// what an input file holds: each kind has its own size cap and error code,
/// checked while reading, so an oversized input never enters memory whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// a plan (json): at most 64 KiB, else `plan.size`.
    Plan,
    /// a state (json): at most 64 KiB, else `state.size`.
    State,
    /// a policy file (toml): at most 64 KiB, else `policy.size`.
    Policy,
    /// a key file (64 hex digits): at most 256 bytes, else `key.invalid`.
    Key,
    /// a corpus of plans or intents (red team, bench): at most 4 MiB, else `corpus.size`.
    Corpus,
}

impl Input {
    /// the most bytes this kind may have.
    pub const fn cap(self) -> u64 {
        match self {
            Input::Plan | Input::State | Input::Policy => json::MAX_JSON_BYTES as u64,
            Input::Key => 256,
            Input::Corpus => 4 << 20,
        }
    }

    /// the error code of an oversized input.
    pub const fn size_code(self) -> Code {
        match self {
            Input::Plan => Code::PlanSize,
            Input::State => Code::StateSize,
            Input::Policy => Code::PolicySize,
            Input::Key => Code::KeyInvalid,
            Input::Corpus => Code::CorpusSize,
        }
    }

    const fn what(self) -> &'static str {
        match self {
            Input::Plan => "plan",
            Input::State => "state",
            Input::Policy => "policy",
            Input::Key => "key file",
            Input::Corpus => "corpus",
        }
    }
}

/// reads at most `cap` bytes from `r`; more is an error after `cap + 1`
/// bytes, whatever the source's length (`/dev/zero` included).
pub fn read_capped(r: impl std::io::Read, kind: Input, name: &str) -> Result<Vec<u8>, InputError> {
    let cap = kind.cap();
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut r.take(cap + 1), &mut buf)
        .map_err(|e| Code::Io.err(format!("cannot read {name}: {e}")))?;
    if buf.len() as u64 > cap {
        return Err(kind.size_code().err(
            format!("{} {name} is more than {cap} bytes; at most {cap} are allowed", kind.what()),
        ));
    }
    Ok(buf)
}

/// reads a file or `-` (stdin) through `kind`'s size cap; a missing file is
/// bad input.
pub fn read_input(path: &Path, kind: Input) -> Result<Vec<u8>, InputError> {
    if path.as_os_str() == "-" {
        return read_capped(std::io::stdin().lock(), kind, "stdin");
    }
    let name = format!("`{}`", path.display());
    let f = std::fs::File::open(path).map_err(|e| Code::Io.err(format!("cannot read {name}: {e}")))?;
    read_capped(f, kind, &name)
}

/// the policy from `--policy`, or the built-in default (system/policy.toml).
pub fn load_policy(path: Option<&Path>) -> Result<Policy, InputError> {
    match path {
        None => Ok(DEFAULT_POLICY),
        Some(p) => {
            let bytes = read_input(p, Input::Policy)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Code::PolicySyntax.err(format!("`{}` is not utf-8", p.display())))?;
            json::parse_policy(&text)
        }
    }
}

/// the confirmation key from `--key-file` (hex, mode 0600), or this host's
/// ([`host_keys`]).
pub fn load_key(path: Option<&Path>) -> Result<[u8; 32], InputError> {
    match path {
        None => host_keys().map(|k| k.confirm),
        Some(p) => pd_interface::keys::store::read_key(p).map_err(|e| Code::KeyInvalid.err(e.to_string())),
    }
}

/// the confirmation key of boot `epoch` (`auth::epoch_key`; epoch 0 is the
/// offline form `llmsh check` uses).
pub fn epoch_key(key: &[u8; 32], epoch: u64) -> [u8; 32] {
    policy_verifier::auth::epoch_key(key, epoch)
}
