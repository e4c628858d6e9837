//! the local backend's prefix cache: the llama.cpp state (kv cache) after
//! evaluating a prefix of a prompt ([`super::prompt::Prompt::cache_points`]),
//! saved to disk once and loaded per request, so a request evaluates only
//! the state and the intent. no resident process: the file is the cache.
//!
//! files live in `$XDG_CACHE_HOME/llm-os/prefix/` (else `~/.cache/...`):
//! `KEY.kv` is llama.cpp's state file, `KEY.sum` the sha256 of it. the key
//! hashes everything the state depends on: the model file's identity, the
//! prefix tokens, the context parameters, llmsh's and llama-cpp-2's versions.
//! a file that is too big, does not match its sum, or whose tokens are not
//! the prefix is removed and rebuilt; every failure falls back to a full
//! evaluation, so the cache can cost time but never change an answer.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::token::LlamaToken;
use sha2::{Digest, Sha256};

/// the largest state file read back: a 135M model's kv cache for a
/// 1k-token prefix is ~25 MB; bigger models get no cache rather than
/// unbounded reads.
pub const MAX_BYTES: u64 = 128 << 20;
/// state files kept (each ~3-15 MB); the least recently used beyond go.
pub const MAX_FILES: usize = 16;
/// the llama-cpp-2 version the state format comes from (part of the key).
const LLAMA_CPP_2: &str = "0.1.160";

/// `$XDG_CACHE_HOME/llm-os/prefix`, else `~/.cache/llm-os/prefix`.
pub fn dir() -> PathBuf {
    super::model_file::cache_dir()
        .parent()
        .map_or_else(|| PathBuf::from(".cache"), Path::to_path_buf)
        .join("prefix")
}

/// whether the cache is switched off (`LLMSH_PREFIX_CACHE=off`).
pub fn disabled() -> bool {
    std::env::var("LLMSH_PREFIX_CACHE").is_ok_and(|v| v == "off" || v == "0")
}

/// the cache key: sha256 over the model file's identity (canonical path,
/// size, mtime), the context parameters, the versions and the prefix tokens.
pub fn key(model: &Path, params: &str, tokens: &[LlamaToken]) -> Option<String> {
    let canon = fs::canonicalize(model).ok()?;
    let meta = fs::metadata(&canon).ok()?;
    let mut h = Sha256::new();
    h.update(b"llm-os prefix cache v1\0");
    h.update(canon.to_string_lossy().as_bytes());
    h.update([0u8]);
    h.update(meta.len().to_le_bytes());
    h.update(meta.mtime().to_le_bytes());
    h.update(meta.mtime_nsec().to_le_bytes());
    h.update(params.as_bytes());
    h.update([0u8]);
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update([0u8]);
    h.update(LLAMA_CPP_2.as_bytes());
    h.update([0u8]);
    for t in tokens {
        h.update(t.0.to_le_bytes());
    }
    Some(policy_verifier::json::hex(&h.finalize()))
}

fn paths(dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    (dir.join(format!("{key}.kv")), dir.join(format!("{key}.sum")))
}

/// sha256 of a file read through [`MAX_BYTES`]; `None` when it is bigger.
fn file_sum(path: &Path) -> Option<String> {
    let f = File::open(path).ok()?;
    let mut r = f.take(MAX_BYTES + 1);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n_total = 0u64;
    loop {
        let n = r.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        n_total += n as u64;
        h.update(buf.get(..n)?);
    }
    (n_total <= MAX_BYTES).then(|| policy_verifier::json::hex(&h.finalize()))
}

/// what became of a load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// the prefix state is in the context.
    Hit,
    /// no file under this key.
    Miss,
    /// a file was there but unusable (size, sum, tokens, llama.cpp): removed.
    Corrupt,
}

/// loads the state saved under `key` into `ctx` if it holds exactly `tokens`.
/// on anything but a hit the context may hold garbage: the caller makes a
/// fresh one.
pub fn load(ctx: &mut LlamaContext<'_>, dir: &Path, key: &str, tokens: &[LlamaToken]) -> Load {
    let (kv, sum) = paths(dir, key);
    let Ok(meta) = fs::symlink_metadata(&kv) else {
        return Load::Miss;
    };
    let ok = meta.is_file()
        && meta.len() <= MAX_BYTES
        && read_small(&sum).is_some_and(|s| Some(s) == file_sum(&kv))
        && ctx
            .state_load_file(&kv, tokens.len())
            .is_ok_and(|t| t == tokens);
    if ok {
        // recently used files survive eviction
        let _ = File::open(&kv).and_then(|f| f.set_modified(std::time::SystemTime::now()));
        Load::Hit
    } else {
        let _ = fs::remove_file(&kv);
        let _ = fs::remove_file(&sum);
        Load::Corrupt
    }
}

/// a sum file: 64 hex digits, read through a cap.
fn read_small(path: &Path) -> Option<String> {
    let mut s = String::new();
    File::open(path).ok()?.take(128).read_to_string(&mut s).ok()?;
    let s = s.trim().to_string();
    (s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// a new file only the user can read, for llama.cpp or us to fill.
fn private_file(path: &Path) -> std::io::Result<File> {
    let _ = fs::remove_file(path);
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// saves the context's state (which holds exactly `tokens`) under `key`:
/// temp files (0600), then renames, so a reader sees a whole file or none.
pub fn save(ctx: &LlamaContext<'_>, dir: &Path, key: &str, tokens: &[LlamaToken]) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let (kv, sum) = paths(dir, key);
    let pid = std::process::id();
    let kv_tmp = dir.join(format!("{key}.kv.{pid}.tmp"));
    let sum_tmp = dir.join(format!("{key}.sum.{pid}.tmp"));
    let result = (|| {
        drop(private_file(&kv_tmp).map_err(|e| e.to_string())?);
        ctx.state_save_file(&kv_tmp, tokens)
            .map_err(|e| format!("llama.cpp: {e}"))?;
        let digest = file_sum(&kv_tmp).ok_or("the state is larger than the cap")?;
        let mut f = private_file(&sum_tmp).map_err(|e| e.to_string())?;
        f.write_all(digest.as_bytes()).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        File::open(&kv_tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| e.to_string())?;
        fs::rename(&sum_tmp, &sum).map_err(|e| e.to_string())?;
        fs::rename(&kv_tmp, &kv).map_err(|e| e.to_string())
    })();
    let _ = fs::remove_file(&kv_tmp);
    let _ = fs::remove_file(&sum_tmp);
    evict(dir);
    result
}

/// keeps the [`MAX_FILES`] most recently used state files.
fn evict(dir: &Path) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    let mut kvs: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "kv"))
        .filter_map(|p| Some((fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    if kvs.len() <= MAX_FILES {
        return;
    }
    kvs.sort();
    for (_, p) in kvs.iter().take(kvs.len() - MAX_FILES) {
        let _ = fs::remove_file(p);
        let _ = fs::remove_file(p.with_extension("sum"));
    }
}
