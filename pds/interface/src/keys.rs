//! the installation's two secrets and how they reach the verifier PD.
//!
//! - the plan key authenticates plan frames (`auth.mac`): the host's link
//!   owner seals every plan with it, the verifier PD checks it first.
//! - the confirmation key is the human's: `llmsh confirm` and the
//!   interactive yes make tokens under it (`auth.confirm`).
//!
//! `llmsh keygen` writes both (mode 0600) under the user's config dir; the
//! hosted system gets them at boot, the seL4 image at image build, patched
//! into the verifier ELF as one [`BLOB_LEN`]-byte blob that starts with
//! [`BLOB_MAGIC`]. the dev keys in system/ are public and for tests only;
//! the system reports which kind it runs on ([`KeySource`]) in every status
//! and receipt.

use serde::{Deserialize, Serialize};

/// one 32-byte key.
pub type Key = [u8; 32];

/// where the verifier PD's keys came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum KeySource {
    /// none: the image was built without keys; every plan is refused (`auth.mac`).
    #[default]
    None,
    /// the public dev keys of system/ (tests only): anyone can forge plans.
    Dev,
    /// this installation's secrets (`llmsh keygen`).
    Installation,
}

impl KeySource {
    /// `none`, `dev`, `installation`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Dev => "dev",
            Self::Installation => "installation",
        }
    }
}

/// the verifier's keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    /// authenticates plan frames.
    pub plan: Key,
    /// the human's confirmation key.
    pub confirm: Key,
    /// dev or installation.
    pub source: KeySource,
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // never print a secret
        f.debug_struct("Keys").field("source", &self.source).finish_non_exhaustive()
    }
}

/// the dev confirmation key (system/dev-confirm.key; public, tests only).
pub const DEV_CONFIRM_KEY: Key = hex32(include_str!("../../../system/dev-confirm.key"));
/// the dev plan key (system/dev-plan.key; public, tests only).
pub const DEV_PLAN_KEY: Key = hex32(include_str!("../../../system/dev-plan.key"));

impl Keys {
    /// the public dev keys.
    pub const fn dev() -> Keys {
        Keys { plan: DEV_PLAN_KEY, confirm: DEV_CONFIRM_KEY, source: KeySource::Dev }
    }
}

/// the marker the image build finds in the verifier ELF.
pub const BLOB_MAGIC: [u8; 16] = *b"llm-os:keyblob:1";
/// magic, one source byte, seven spare, plan key, confirmation key.
pub const BLOB_LEN: usize = 16 + 8 + 32 + 32;
/// the blob an image carries before the build patches it: no keys.
#[allow(clippy::indexing_slicing, reason = "const evaluation: i < 16, the length of both")]
pub const BLOB_EMPTY: [u8; BLOB_LEN] = {
    let mut b = [0u8; BLOB_LEN];
    let mut i = 0;
    while i < 16 {
        b[i] = BLOB_MAGIC[i];
        i += 1;
    }
    b
};

/// the blob for `keys` (what the image build writes).
pub fn to_blob(keys: &Keys) -> [u8; BLOB_LEN] {
    let mut b = BLOB_EMPTY;
    let src = match keys.source {
        KeySource::None => 0,
        KeySource::Dev => 1,
        KeySource::Installation => 2,
    };
    if let Some(x) = b.get_mut(16) {
        *x = src;
    }
    if let Some(dst) = b.get_mut(24..56) {
        dst.copy_from_slice(&keys.plan);
    }
    if let Some(dst) = b.get_mut(56..88) {
        dst.copy_from_slice(&keys.confirm);
    }
    b
}

/// the keys in a blob; none for an unpatched one (source byte 0). the
/// magic is not compared here, so the verifier ELF holds it exactly once
/// (in the blob itself) and the image build finds one place to patch.
pub fn from_blob(b: &[u8; BLOB_LEN]) -> Option<Keys> {
    let source = match b.get(16) {
        Some(1) => KeySource::Dev,
        Some(2) => KeySource::Installation,
        _ => return None,
    };
    let plan: Key = b.get(24..56)?.try_into().ok()?;
    let confirm: Key = b.get(56..88)?.try_into().ok()?;
    Some(Keys { plan, confirm, source })
}

#[allow(clippy::indexing_slicing, clippy::panic, reason = "const evaluation: a bad dev key file fails the build")]
const fn hex32(s: &str) -> Key {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("a dev key file must be 64 hex digits"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() >= 64, "a dev key file must be 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// the key store on the host: `$XDG_CONFIG_HOME/llm-os` (else
/// `~/.config/llm-os`), `plan.key` and `confirm.key`, 64 hex digits each.
#[cfg(feature = "std")]
pub mod store {
    use std::io::{Read, Write};
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    use super::{Key, KeySource, Keys};

    /// the plan key's file name.
    pub const PLAN_FILE: &str = "plan.key";
    /// the confirmation key's file name.
    pub const CONFIRM_FILE: &str = "confirm.key";
    /// `LLM_OS_DEV_KEYS=1`: use the public dev keys (tests only).
    pub const DEV_ENV: &str = "LLM_OS_DEV_KEYS";
    /// a key file is 64 hex digits and a newline; anything longer is refused.
    const MAX_KEY_FILE: u64 = 256;

    /// why the keys could not be had.
    #[derive(Debug)]
    pub struct KeyError(pub String);

    impl std::fmt::Display for KeyError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for KeyError {}

    /// whether the dev keys were asked for (`LLM_OS_DEV_KEYS=1`).
    pub fn dev_requested() -> bool {
        std::env::var_os(DEV_ENV).is_some_and(|v| v == "1")
    }

    /// the key directory: `$XDG_CONFIG_HOME/llm-os`, else `$HOME/.config/llm-os`.
    pub fn dir() -> Result<PathBuf, KeyError> {
        match (std::env::var_os("XDG_CONFIG_HOME"), std::env::var_os("HOME")) {
            (Some(x), _) if !x.is_empty() => Ok(PathBuf::from(x).join("llm-os")),
            (_, Some(h)) if !h.is_empty() => Ok(PathBuf::from(h).join(".config/llm-os")),
            _ => Err(KeyError("neither XDG_CONFIG_HOME nor HOME is set: no place for the keys".into())),
        }
    }

    /// reads one key file: owned by this user, mode 0600 (no group or other
    /// access), at most [`MAX_KEY_FILE`] bytes, 64 hex digits.
    pub fn read_key(path: &Path) -> Result<Key, KeyError> {
        let err = |m: String| KeyError(format!("`{}`: {m}", path.display()));
        let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let meta = f.metadata().map_err(|e| err(e.to_string()))?;
        if meta.mode() & 0o077 != 0 {
            return Err(err(format!("mode {:o} lets others read it; it must be 0600", meta.mode() & 0o777)));
        }
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        if me.is_some_and(|u| u != meta.uid()) {
            return Err(err("owned by another user".into()));
        }
        let mut text = String::new();
        f.take(MAX_KEY_FILE + 1).read_to_string(&mut text).map_err(|e| err(e.to_string()))?;
        if text.len() as u64 > MAX_KEY_FILE {
            return Err(err("too long for a key file".into()));
        }
        parse_hex(text.trim()).ok_or_else(|| err("not 64 hex digits".into()))
    }

    /// 64 hex digits as a key.
    pub fn parse_hex(s: &str) -> Option<Key> {
        if s.len() != 64 || !s.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(out)
    }

    fn hex(k: &Key) -> String {
        k.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// 32 bytes from the OS's randomness.
    pub fn random_key() -> Result<Key, KeyError> {
        let mut k = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut k))
            .map_err(|e| KeyError(format!("cannot read /dev/urandom: {e}")))?;
        Ok(k)
    }

    /// the keys in `dir`.
    pub fn load(dir: &Path) -> Result<Keys, KeyError> {
        Ok(Keys {
            plan: read_key(&dir.join(PLAN_FILE))?,
            confirm: read_key(&dir.join(CONFIRM_FILE))?,
            source: KeySource::Installation,
        })
    }

    /// the lock file in the key directory.
    pub const LOCK_FILE: &str = ".lock";
    /// how long [`locked`] waits for another process's first use.
    pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

    /// `dir`, created 0700 if it is missing.
    pub fn make_dir(dir: &Path) -> Result<(), KeyError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| KeyError(format!("cannot create `{}`: {e}", dir.display())))
    }

    /// runs `f` holding the key directory's lock (an advisory lock on
    /// [`LOCK_FILE`], created 0600): without it, two processes on their
    /// first use each found no keys, and the second to create a file failed
    /// on the first's, or read it half written. waits at most [`LOCK_WAIT`];
    /// the lock goes with the process, so a crash leaves none held. the
    /// outer error is the lock's, the inner one `f`'s.
    pub fn locked<T>(dir: &Path, f: impl FnOnce() -> T) -> Result<T, KeyError> {
        make_dir(dir)?;
        let path = dir.join(LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| KeyError(format!("cannot open `{}`: {e}", path.display())))?;
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(KeyError(format!(
                        "`{}` is still locked after {} s: another llmsh or llm-osd is writing keys",
                        path.display(),
                        LOCK_WAIT.as_secs()
                    )))
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(KeyError(format!("cannot lock `{}`: {e}", path.display())))
                }
            }
        }
        let out = f();
        let _ = lock.unlock();
        Ok(out)
    }

    /// writes fresh keys into `dir` (created 0700), each file 0600 and
    /// created new: an existing key is never overwritten unless `force`.
    /// the caller holds [`locked`].
    pub fn generate(dir: &Path, force: bool) -> Result<Keys, KeyError> {
        make_dir(dir)?;
        let keys = Keys { plan: random_key()?, confirm: random_key()?, source: KeySource::Installation };
        for (name, key) in [(PLAN_FILE, &keys.plan), (CONFIRM_FILE, &keys.confirm)] {
            let path = dir.join(name);
            if force {
                let _ = std::fs::remove_file(&path);
            }
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| KeyError(format!("cannot create `{}`: {e}", path.display())))?;
            // the umask cannot widen 0600, but a pre-set acl-free fs may narrow it: set it outright
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .and_then(|()| writeln!(f, "{}", hex(key)))
                .map_err(|e| KeyError(format!("cannot write `{}`: {e}", path.display())))?;
        }
        Ok(keys)
    }

    /// the keys this host uses: the dev keys when `LLM_OS_DEV_KEYS=1`, else
    /// the installation's, generated on first use (`note` says so, once).
    pub fn host_keys(note: &mut dyn FnMut(&str)) -> Result<Keys, KeyError> {
        if dev_requested() {
            return Ok(Keys::dev());
        }
        keys_in(&dir()?, note)
    }

    /// the installation's keys in `d`, generated there if it has none.
    pub fn keys_in(d: &Path, note: &mut dyn FnMut(&str)) -> Result<Keys, KeyError> {
        let d = d.to_path_buf();
        let have = |n: &str| d.join(n).exists();
        if have(PLAN_FILE) && have(CONFIRM_FILE) {
            return load(&d);
        }
        locked(&d, || {
            if have(PLAN_FILE) || have(CONFIRM_FILE) {
                return load(&d);
            }
            let keys = generate(&d, false)?;
            note(&format!("generated this installation's keys in `{}` (first use)", d.display()));
            Ok(keys)
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_uses_at_once_write_one_set_of_keys_and_all_read_it() {
        let dir = std::env::temp_dir().join(format!("llm-os-keys-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let notes = std::sync::atomic::AtomicUsize::new(0);
        let start = std::sync::Barrier::new(8);
        let got: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        start.wait();
                        store::keys_in(&dir, &mut |_| {
                            notes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = got[0].as_ref().unwrap();
        for k in &got {
            let k = k.as_ref().unwrap();
            assert_eq!((k.plan, k.confirm), (first.plan, first.confirm));
        }
        assert_eq!(notes.load(std::sync::atomic::Ordering::SeqCst), 1, "one of them generated the keys");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_blob_round_trips_and_an_unpatched_one_has_no_keys() {
        let k = Keys { plan: [1; 32], confirm: [2; 32], source: KeySource::Installation };
        assert_eq!(from_blob(&to_blob(&k)), Some(k));
        assert_eq!(from_blob(&BLOB_EMPTY), None);
        assert_eq!(from_blob(&to_blob(&Keys::dev())).map(|k| k.source), Some(KeySource::Dev));
        assert_ne!(DEV_PLAN_KEY, DEV_CONFIRM_KEY);
    }
}
