//! where the cases run: a fresh hosted system or a fresh boot of the seL4
//! image in qemu per case, and the settings the run shares.

use std::path::{Path, PathBuf};

use policy_verifier::Policy;

use crate::qemu::QemuError;

/// where the cases run, and what watches the capability PDs.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// a fresh hosted system per case; the oracle is its invocation log,
    /// which sees every request a capability PD receives, cross-checked
    /// against the PDs' own counters.
    Hosted,
    /// a fresh boot of the seL4 image in qemu per case; no outside log sees
    /// the PPCs there, so the oracle is what the capability PDs report: the
    /// requests each carried out (its counter) and the state it holds.
    Qemu {
        /// `qemu-system-aarch64`.
        qemu: &'a Path,
        /// the loader image (built once for the run).
        loader: &'a Path,
    },
}

/// the red-team run's settings.
pub struct Settings<'a> {
    /// where to run.
    pub target: Target<'a>,
    /// the .system file.
    pub system: &'a Path,
    /// the policy the reference checks against (the PD's is compiled in).
    pub policy: &'a Policy,
    /// the confirmation key (the human's).
    pub key: [u8; 32],
    /// the keys the systems under test boot with (the plan key seals the
    /// host's frames; on qemu the image carries them).
    pub keys: pd_interface::keys::Keys,
}

/// what the qemu target needs: qemu, the loader image and the private
/// runtime dir the per-case boots use (removed when dropped).
pub struct QemuImage {
    /// `qemu-system-aarch64`.
    pub qemu: PathBuf,
    /// the loader image.
    pub loader: PathBuf,
    /// the runtime dir, removed on drop.
    _dir: TempDir,
}

impl QemuImage {
    /// the target this image boots.
    pub fn target(&self) -> Target<'_> {
        Target::Qemu { qemu: &self.qemu, loader: &self.loader }
    }
}

/// finds qemu, builds the loader image if needed (its progress lines go to
/// `progress`) and makes a private runtime dir for the boots.
pub fn qemu_image(progress: &mut dyn FnMut(&str)) -> Result<QemuImage, QemuError> {
    use board_qemu_virt_aarch64::image;
    let config = crate::qemu::config();
    let sdk = image::sdk_from_env(config).map_err(QemuError::Image)?;
    let qemu = board_qemu_virt_aarch64::qemu::find_qemu().ok_or(QemuError::NoQemu)?;
    let img = crate::qemu::build_image_with(sdk, config, progress)?;
    let dir = TempDir(std::env::temp_dir().join(format!("llm-os-redteam-{}", std::process::id())));
    crate::osd::ensure_private(&dir.0, crate::osd::my_uid())
        .map_err(|e| QemuError::Io(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.0)))?;
    crate::paths::use_private_runtime_dir(dir.0.clone());
    Ok(QemuImage { qemu, loader: img.loader, _dir: dir })
}

/// a directory removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
