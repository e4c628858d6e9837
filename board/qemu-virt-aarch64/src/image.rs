//! the image build: the PD ELFs (release profile, `aarch64-unknown-none`,
//! laid out by pd-runtime's `microkit.ld`) and `system/llm-os.system`
//! go through the installed SDK's tool:
//! `$MICROKIT_SDK/bin/microkit system/llm-os.system --search-path <elfs>
//! --board qemu_virt_aarch64 --config <debug|release> -o loader.img -r report.txt`.
//!
//! the SDK is never part of the repo: it is read from `MICROKIT_SDK`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{MICROKIT_BOARD, PD_TARGET};

/// the SDK build config; it decides the kernel's printing and the seL4
/// invocation labels, so the PDs are built for it (pd-runtime's feature
/// `microkit-debug` for `debug`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Config {
    /// kernel and PDs print on the UART; `HardwareDebugAPI` labels.
    Debug,
    /// nothing prints; release labels.
    Release,
}

impl Config {
    /// the name the Microkit tool and the SDK's folders use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "debug",
            Self::Release => "release",
        }
    }

    /// `debug` or `release`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "debug" => Some(Self::Debug),
            "release" => Some(Self::Release),
            _ => None,
        }
    }
}

/// why no image was built.
#[derive(Debug)]
pub enum ImageError {
    /// `MICROKIT_SDK` is unset or does not hold this board.
    NoSdk(String),
    /// the system file names an image with no PD crate behind it.
    UnknownImage(String),
    /// cargo failed to build the PDs.
    Cargo(String),
    /// the Microkit tool rejected the system.
    Microkit(String),
    /// reading or writing a file failed.
    Io(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSdk(why) => write!(f, "no Microkit SDK: {why}"),
            Self::UnknownImage(p) => write!(f, "program image `{p}` has no crate under pds/"),
            Self::Cargo(e) => write!(f, "building the PDs failed: {e}"),
            Self::Microkit(e) => write!(f, "the Microkit tool failed: {e}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImageError {}

/// the repository root (this crate is `board/qemu-virt-aarch64`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap_or_else(|_| {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    })
}

/// the SDK named by `MICROKIT_SDK`, checked to hold the tool and this board
/// in `config`; the error says what is missing (one line, for `SKIPPED:`).
pub fn sdk_from_env(config: Config) -> Result<PathBuf, ImageError> {
    let sdk = std::env::var_os("MICROKIT_SDK")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ImageError::NoSdk("MICROKIT_SDK is not set".into()))?;
    let sdk = PathBuf::from(sdk);
    let tool = sdk.join("bin/microkit");
    if !tool.is_file() {
        return Err(ImageError::NoSdk(format!("no Microkit SDK at `{}` (no bin/microkit)", sdk.display())));
    }
    let board = sdk.join("board").join(MICROKIT_BOARD).join(config.as_str());
    if !board.is_dir() {
        return Err(ImageError::NoSdk(format!(
            "the SDK at `{}` has no board `{MICROKIT_BOARD}` config `{}`",
            sdk.display(),
            config.as_str()
        )));
    }
    Ok(sdk)
}

/// what to build.
#[derive(Debug, Clone)]
pub struct ImageOptions {
    /// the SDK (see [`sdk_from_env`]).
    pub sdk: PathBuf,
    /// debug or release.
    pub config: Config,
    /// the system description.
    pub system: PathBuf,
    /// cargo's target dir for the PD build.
    pub target_dir: PathBuf,
    /// where the ELFs, `loader.img` and `report.txt` go.
    pub out_dir: PathBuf,
    /// bytes written into PD images after they are built (the verifier's keys).
    pub patches: Vec<Patch>,
}

/// bytes written over a marked blob of one PD image after cargo built it:
/// how the verifier PD gets this installation's keys without them passing
/// through cargo. an image with a patch holds a secret: its ELF and the
/// loader image are written mode 0600.
#[derive(Clone)]
pub struct Patch {
    /// the program image, e.g. `verifier.elf`.
    pub image: String,
    /// the blob's first bytes as compiled in; it must occur exactly once.
    pub marker: Vec<u8>,
    /// what to write from the marker on.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Patch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // the bytes are secret
        f.debug_struct("Patch").field("image", &self.image).field("len", &self.bytes.len()).finish()
    }
}

/// writes `patch` into the ELF at `path` (mode 0600 afterwards).
pub fn apply_patch(path: &Path, patch: &Patch) -> Result<(), ImageError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |m: String| ImageError::Io(format!("patching `{}`: {m}", path.display()));
    let mut elf = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    if patch.marker.is_empty() {
        return Err(err("empty marker".into()));
    }
    let hits: Vec<usize> = elf
        .windows(patch.marker.len())
        .enumerate()
        .filter(|(_, w)| *w == patch.marker.as_slice())
        .map(|(i, _)| i)
        .collect();
    let [at] = hits.as_slice() else {
        return Err(err(format!("the marker occurs {} times, not once", hits.len())));
    };
    let dst = elf
        .get_mut(*at..at.saturating_add(patch.bytes.len()))
        .ok_or_else(|| err("the blob runs past the end of the file".into()))?;
    dst.copy_from_slice(&patch.bytes);
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| err(e.to_string()))?;
    std::fs::write(path, &elf).map_err(|e| err(e.to_string()))
}

impl ImageOptions {
    /// `system/llm-os.system`, `CARGO_TARGET_DIR` (or `<repo>/target`), and
    /// `<target>/llm-os-image/<config>/`.
    pub fn new(sdk: PathBuf, config: Config) -> Self {
        let root = repo_root();
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|p| if p.is_absolute() { p } else { root.join(p) })
            .unwrap_or_else(|| root.join("target"));
        let out_dir = target_dir.join("llm-os-image").join(config.as_str());
        Self { sdk, config, system: root.join("system/llm-os.system"), target_dir, out_dir, patches: Vec::new() }
    }
}

/// a built image.
#[derive(Debug, Clone)]
pub struct Image {
    /// the loader image qemu loads at [`crate::LOADER_ADDR`].
    pub loader: PathBuf,
    /// the Microkit tool's report (caps, objects, addresses).
    pub report: PathBuf,
    /// the config it was built for.
    pub config: Config,
}

/// the `<program_image path="…"/>` names in a system description, each once.
pub fn program_images(system_xml: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = system_xml;
    while let Some(at) = rest.find("<program_image") {
        rest = rest.get(at..).unwrap_or_default();
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = rest.get(..end).unwrap_or_default();
        if let Some(p) = tag.find("path=\"") {
            let v = tag.get(p + 6..).unwrap_or_default();
            let v = v.get(..v.find('"').unwrap_or(v.len())).unwrap_or_default();
            if !out.iter().any(|o| o == v) {
                out.push(v.to_owned());
            }
        }
        rest = rest.get(end..).unwrap_or_default();
    }
    out
}

/// the cargo package in `pds/<stem>` that builds `<stem>.elf`.
pub fn package_for(root: &Path, image: &str) -> Result<(String, PathBuf), ImageError> {
    let stem = image.strip_suffix(".elf").unwrap_or(image);
    let dir = root.join("pds").join(stem);
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
        .map_err(|_| ImageError::UnknownImage(image.to_owned()))?;
    let name = manifest
        .lines()
        .find_map(|l| {
            let l = l.trim();
            let v = l.strip_prefix("name")?.trim_start().strip_prefix('=')?.trim();
            Some(v.trim_matches('"').to_owned())
        })
        .ok_or_else(|| ImageError::UnknownImage(image.to_owned()))?;
    Ok((name, dir.canonicalize().unwrap_or(dir)))
}

/// the cargo features of a PD build for `config`.
pub fn pd_features(config: Config) -> &'static [&'static str] {
    match config {
        Config::Debug => &["--features", "pd-runtime/microkit-debug"],
        Config::Release => &[],
    }
}

/// build the PDs and the loader image; `progress` gets one line per step.
pub fn build(opts: &ImageOptions, progress: &mut dyn FnMut(&str)) -> Result<Image, ImageError> {
    let root = repo_root();
    let xml = std::fs::read_to_string(&opts.system)
        .map_err(|e| ImageError::Io(format!("cannot read `{}`: {e}", opts.system.display())))?;
    let images = program_images(&xml);
    let mut packages = Vec::new();
    for img in &images {
        packages.push((img.clone(), package_for(&root, img)?));
    }

    progress(&format!("building {} PD images for {PD_TARGET} ({})", packages.len(), opts.config.as_str()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", PD_TARGET, "--message-format=json-render-diagnostics"])
        .env("CARGO_TARGET_DIR", &opts.target_dir)
        .args(pd_features(opts.config))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (_, (pkg, _)) in &packages {
        cmd.args(["-p", pkg]);
    }
    let out = cmd.output().map_err(|e| ImageError::Cargo(format!("cannot run cargo: {e}")))?;
    if !out.status.success() {
        return Err(ImageError::Cargo(format!("cargo exited with {}", out.status)));
    }

    let elf_dir = opts.out_dir.join("elf");
    std::fs::create_dir_all(&elf_dir)
        .map_err(|e| ImageError::Io(format!("cannot create `{}`: {e}", elf_dir.display())))?;
    let artifacts = executables(&String::from_utf8_lossy(&out.stdout));
    for (img, (pkg, dir)) in &packages {
        let exe = artifacts
            .iter()
            .find(|(manifest, _)| Path::new(manifest).parent() == Some(dir.as_path()))
            .map(|(_, exe)| exe)
            .ok_or_else(|| ImageError::Cargo(format!("package `{pkg}` built no executable for `{img}`")))?;
        let dst = elf_dir.join(img);
        // a patched copy from an earlier build is read-only to others: replace it
        let _ = std::fs::remove_file(&dst);
        std::fs::copy(exe, &dst)
            .map_err(|e| ImageError::Io(format!("cannot copy `{exe}` to `{}`: {e}", dst.display())))?;
        for p in opts.patches.iter().filter(|p| &p.image == img) {
            apply_patch(&dst, p)?;
        }
    }

    progress(&format!("running the Microkit tool ({MICROKIT_BOARD}, {})", opts.config.as_str()));
    let loader = opts.out_dir.join("loader.img");
    let report = opts.out_dir.join("report.txt");
    if !opts.patches.is_empty() {
        // the loader will hold the patched secrets: create it 0600 before the tool writes it
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::remove_file(&loader);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&loader)
            .map_err(|e| ImageError::Io(format!("cannot create `{}`: {e}", loader.display())))?;
    }
    let out = Command::new(opts.sdk.join("bin/microkit"))
        .arg(&opts.system)
        .arg("--search-path")
        .arg(&elf_dir)
        .args(["--board", MICROKIT_BOARD, "--config", opts.config.as_str()])
        .arg("-o")
        .arg(&loader)
        .arg("-r")
        .arg(&report)
        .output()
        .map_err(|e| ImageError::Microkit(format!("cannot run microkit: {e}")))?;
    if !out.status.success() {
        let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        }
        return Err(ImageError::Microkit(msg));
    }
    Ok(Image { loader, report, config: opts.config })
}

/// (manifest_path, executable) of every executable cargo reported.
fn executables(json_lines: &str) -> Vec<(String, String)> {
    json_lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("reason").and_then(|r| r.as_str()) == Some("compiler-artifact"))
        .filter_map(|v| {
            let exe = v.get("executable")?.as_str()?.to_owned();
            let manifest = v.get("manifest_path")?.as_str()?.to_owned();
            Some((manifest, exe))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_images_are_listed_once_in_order() {
        let xml = r#"<system><protection_domain name="a"><program_image path="a.elf" />
            <protection_domain name="w0" id="0"><program_image path="w.elf"/></protection_domain>
            <protection_domain name="w1" id="1"><program_image path="w.elf"/></protection_domain>
            </protection_domain></system>"#;
        assert_eq!(program_images(xml), vec!["a.elf".to_owned(), "w.elf".to_owned()]);
    }

    #[test]
    fn every_image_of_the_system_has_a_pd_crate() {
        let root = repo_root();
        let xml = std::fs::read_to_string(root.join("system/llm-os.system")).unwrap_or_default();
        let images = program_images(&xml);
        assert!(images.len() >= 7, "{images:?}");
        for img in images {
            assert!(package_for(&root, &img).is_ok(), "{img}");
        }
    }

    #[test]
    fn missing_sdk_is_a_one_line_reason() {
        let e = ImageError::NoSdk("MICROKIT_SDK is not set".into()).to_string();
        assert!(!e.contains('\n'));
    }
}
