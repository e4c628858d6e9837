//! the llm-os manifest: system/llm-os.system and system/policy.toml, the two
//! files every fact of the system is written in once.
//!
//! - [`sdf`] parses the .system file as strictly as the Microkit 2.3.0 tool
//!   does for this board, with the line of every error;
//! - [`graph`] checks the capability graph (from `link`, every path to a
//!   capability PD passes through `verifier`);
//! - [`policy`] reads the policy numbers the PDs enforce;
//! - [`check`] ties the two files together (worker count, pool size,
//!   priority ceiling) and [`codegen`] turns them into the Rust constants
//!   the PDs, the hosted system and the host use (channel ids, IRQs,
//!   regions, children, cspace slots, the worker set, policy numbers);
//! - [`build`] is what a build script calls: it fails the build with
//!   `file:line: reason` when the manifest and the code's needs disagree.

pub mod build;
pub mod codegen;
pub mod graph;
pub mod policy;
pub mod sdf;

use std::fmt;
use std::path::{Path, PathBuf};

/// the program image of the worker PDs: every PD running it is one worker.
pub const WORKER_IMAGE: &str = "worker.elf";
/// the program image of the PD owning the page pool.
pub const MEMORY_IMAGE: &str = "memory.elf";
/// the setvar the memory PD finds the pool at: its region is the pool.
pub const POOL_SETVAR: &str = "pool_vaddr";
/// the setvar the memory PD finds the page ownership table at.
pub const LEDGER_SETVAR: &str = "ledger_vaddr";

/// a manifest error: which file, which line, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    /// the file at fault.
    pub file: PathBuf,
    /// 1-based line (0: the file as a whole).
    pub line: u32,
    /// what is wrong.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        }
    }
}

impl std::error::Error for ManifestError {}

/// both files, parsed and checked against each other.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// the .system file's path.
    pub system_path: PathBuf,
    /// the policy file's path.
    pub policy_path: PathBuf,
    /// the parsed .system file.
    pub system: sdf::SystemDescription,
    /// the policy numbers.
    pub policy: policy::PolicyFacts,
    /// the workers, by index: indices into `system.pds`.
    pub workers: Vec<usize>,
}

fn read(path: &Path) -> Result<String, ManifestError> {
    // a manifest is a few KiB; anything past 1 MiB is not one
    const MAX: u64 = 1 << 20;
    let too_big = std::fs::metadata(path).map(|m| m.len() > MAX).unwrap_or(false);
    if too_big {
        return Err(ManifestError {
            file: path.to_owned(),
            line: 0,
            message: "larger than 1 MiB".into(),
        });
    }
    std::fs::read_to_string(path).map_err(|e| ManifestError {
        file: path.to_owned(),
        line: 0,
        message: format!("cannot read: {e}"),
    })
}

impl Manifest {
    /// read, parse and check both files.
    pub fn load(system_path: &Path, policy_path: &Path) -> Result<Self, ManifestError> {
        let system_text = read(system_path)?;
        let policy_text = read(policy_path)?;
        Self::from_texts(system_path, &system_text, policy_path, &policy_text)
    }

    /// parse and check both files' texts (the paths name them in errors).
    pub fn from_texts(
        system_path: &Path,
        system_text: &str,
        policy_path: &Path,
        policy_text: &str,
    ) -> Result<Self, ManifestError> {
        let at_system = |line: u32, message: String| ManifestError {
            file: system_path.to_owned(),
            line,
            message,
        };
        let system = sdf::parse(system_text).map_err(|e| at_system(e.line, e.message))?;
        let policy = policy::parse(policy_text).map_err(|e| ManifestError {
            file: policy_path.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        graph::check_capability_graph(&system, &graph::llm_os_roles(&system))
            .map_err(|e| at_system(graph::error_line(&system, &e), e.to_string()))?;
        let mut m = Manifest {
            system_path: system_path.to_owned(),
            policy_path: policy_path.to_owned(),
            system,
            policy,
            workers: Vec::new(),
        };
        m.workers = check(&m)?;
        Ok(m)
    }

    fn at_system(&self, line: u32, message: String) -> ManifestError {
        ManifestError {
            file: self.system_path.clone(),
            line,
            message,
        }
    }

    fn at_policy(&self, fact: policy::Fact, message: String) -> ManifestError {
        ManifestError {
            file: self.policy_path.clone(),
            line: fact.line,
            message,
        }
    }

    /// the capability PDs, read off the system (see [`graph::llm_os_roles`]).
    pub fn capability_pds(&self) -> Vec<String> {
        graph::llm_os_roles(&self.system).capability
    }
}

/// the setvar the verifier finds the link's request/reply buffer at.
pub const LINK_SETVAR: &str = "link_buf";

/// the verifier's stack, measured (`cargo bench -p policy-verifier --bench
/// stack`, release, x86_64 host, least thread stack to a page on which
/// `state_violations`, a 16-action `verify` and `apply` complete): 8 KiB at
/// 1 worker, 4 KiB at 4, 8 KiB at 8, 20 KiB at 16, 32 KiB at 32. at most
/// `VERIFY_BASE + workers * VERIFY_PER_WORKER` at every count.
pub const VERIFY_BASE: u64 = 8 << 10;
/// the measured growth of the verify loop per worker (0.75 KiB from 16 to
/// 32 workers): 8 copies of a worker of the loop's model (`WorkerTerm` over
/// `Concrete`, 96 bytes).
pub const VERIFY_PER_WORKER: u64 = 768;
/// what the verifier PD holds per worker besides: about ten copies of a
/// worker of the read-back state (`pd_interface::link::WorkerReport`, 88
/// bytes) in the state before, the receipt's two, the reply and the cached
/// receipt, and the model's `State` (56 bytes each).
pub const PD_PER_WORKER: u64 = 1280;
/// the margin over the estimate: seL4's aarch64 code is not the measured
/// x86_64 code, and at 16 workers the estimate without it (56 KiB) stays
/// under the 64 KiB stack that faulted the verifier on its first plan.
pub const STACK_SAFETY: u64 = 2;

/// the least `stack_size` of the verifier PD for `workers` workers and a
/// link buffer (the region at [`LINK_SETVAR`]) of `payload` bytes, to a
/// page: the request and the reply buffer of `protected` (`payload` each,
/// exact), and [`STACK_SAFETY`] times the verify loop and the PD's copies
/// of the state, `VERIFY_BASE + workers * (VERIFY_PER_WORKER + PD_PER_WORKER)`.
pub fn verifier_stack_need(workers: u64, payload: u64) -> u64 {
    let per_worker = VERIFY_PER_WORKER.saturating_add(PD_PER_WORKER);
    let state = VERIFY_BASE.saturating_add(workers.saturating_mul(per_worker));
    let need = payload.saturating_mul(2).saturating_add(STACK_SAFETY.saturating_mul(state));
    need.div_ceil(0x1000).saturating_mul(0x1000)
}

/// the checks across the two files; returns the workers by index.
///
/// - the workers are the PDs running [`WORKER_IMAGE`]: children of one
///   parent with child ids 0..N, as many as `[limits] workers` says;
/// - a worker's declared priority is the kernel's ceiling for it, so it is
///   `[limits] priority_ceiling` (lower and the verifier approves what the
///   kernel refuses; higher and the kernel allows what the verifier never would);
/// - the region the memory PD maps at [`POOL_SETVAR`] is `pool_pages` pages
///   of `page_size`, and the one at [`LEDGER_SETVAR`] holds a byte per page;
/// - the verifier's `stack_size` is at least [`verifier_stack_need`] for
///   the worker count (its loop's state grows with it).
pub fn check(m: &Manifest) -> Result<Vec<usize>, ManifestError> {
    let sys = &m.system;
    let p = &m.policy;
    let mut workers: Vec<(u8, usize)> = Vec::new();
    let mut parent = None;
    for (i, pd) in sys.pds.iter().enumerate() {
        if pd.program_image != WORKER_IMAGE {
            continue;
        }
        let (Some(par), Some(id)) = (pd.parent, pd.child_id) else {
            return Err(m.at_system(
                pd.line,
                format!("worker `{}` must be a child protection domain", pd.name),
            ));
        };
        if parent.is_some_and(|q| q != par) {
            return Err(m.at_system(
                pd.line,
                format!("worker `{}` has another parent than the other workers", pd.name),
            ));
        }
        parent = Some(par);
        if u64::from(pd.priority) != p.priority_ceiling.value {
            return Err(m.at_system(
                pd.line,
                format!(
                    "worker `{}` has priority {}, but policy.toml line {} sets priority_ceiling = {}: \
                     the declared priority is the kernel's ceiling and must be the policy's",
                    pd.name, pd.priority, p.priority_ceiling.line, p.priority_ceiling.value
                ),
            ));
        }
        workers.push((id, i));
    }
    workers.sort();
    for (want, (id, i)) in workers.iter().enumerate() {
        if usize::from(*id) != want {
            let line = sys.pds.get(*i).map_or(0, |pd| pd.line);
            return Err(m.at_system(
                line,
                format!("worker child ids must be 0..{}; found {id}", workers.len()),
            ));
        }
    }
    let n = u64::try_from(workers.len()).unwrap_or(u64::MAX);
    if n != p.workers.value {
        return Err(m.at_policy(
            p.workers,
            format!(
                "workers = {}, but {} declares {n} PDs running `{WORKER_IMAGE}`",
                p.workers.value,
                m.system_path.display()
            ),
        ));
    }
    let memory_map = |setvar: &str| {
        sys.pds
            .iter()
            .filter(|pd| pd.program_image == MEMORY_IMAGE)
            .flat_map(|pd| pd.maps.iter())
            .find(|map| map.setvar_vaddr.as_deref() == Some(setvar))
    };
    let pool_bytes = p.pool_pages.value.saturating_mul(p.page_size.value);
    match memory_map(POOL_SETVAR).and_then(|map| sys.region(&map.mr)) {
        Some(r) if r.size == pool_bytes => {}
        Some(r) => {
            return Err(m.at_system(
                r.line,
                format!(
                    "region `{}` is {:#x} bytes, but policy.toml says pool_pages = {} (line {}) of page_size = {} \
                     (line {}): {pool_bytes:#x} bytes",
                    r.name, r.size, p.pool_pages.value, p.pool_pages.line, p.page_size.value, p.page_size.line
                ),
            ))
        }
        None => {
            return Err(m.at_system(
                0,
                format!("no `{MEMORY_IMAGE}` PD maps a region at setvar `{POOL_SETVAR}`"),
            ))
        }
    }
    match memory_map(LEDGER_SETVAR).and_then(|map| sys.region(&map.mr)) {
        Some(r) if r.size >= p.pool_pages.value => {}
        Some(r) => {
            return Err(m.at_system(
                r.line,
                format!(
                    "region `{}` ({:#x} bytes) cannot hold a byte for each of the {} pool pages",
                    r.name, r.size, p.pool_pages.value
                ),
            ))
        }
        None => {
            return Err(m.at_system(
                0,
                format!("no `{MEMORY_IMAGE}` PD maps a region at setvar `{LEDGER_SETVAR}`"),
            ))
        }
    }
    if let Some(v) = sys.pds.iter().find(|pd| pd.name == graph::GUARD) {
        let payload = v
            .maps
            .iter()
            .find(|map| map.setvar_vaddr.as_deref() == Some(LINK_SETVAR))
            .and_then(|map| sys.region(&map.mr))
            .map_or(0, |r| r.size);
        let need = verifier_stack_need(n, payload);
        if v.stack_size < need {
            return Err(m.at_system(
                v.line,
                format!(
                    "`{}` has stack_size {:#x}, but {n} workers and a {payload:#x}-byte link buffer need at least \
                     {need:#x}: 2 x the buffer + {STACK_SAFETY} x ({VERIFY_BASE} + {n} x {}) bytes (verifier_stack_need)",
                    v.name,
                    v.stack_size,
                    VERIFY_PER_WORKER.saturating_add(PD_PER_WORKER)
                ),
            ));
        }
    }
    Ok(workers.into_iter().map(|(_, i)| i).collect())
}
