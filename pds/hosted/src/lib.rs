//! the hosted llm-os: every PD's unchanged handler on its own host thread,
//! wired from system/llm-os.system.
//!
//! [`HostedSystem::boot`] parses and checks the .system file (the Microkit
//! rules and the capability graph: a system that fails them does not boot),
//! creates one memory buffer per `<memory_region>`, one inbox per PD, and
//! gives each PD exactly the channels, IRQs, regions (with their
//! permissions), children and scheduling contexts the file gives it. the
//! link's UART becomes a byte pipe ([`Handle::transport`]), the timer a host
//! clock. the host talks to the system only through that pipe, with the same
//! framing it uses on qemu's serial port.

pub mod devices;
pub mod observe;

pub use system_manifest::{graph, sdf};

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pd_interface::client::{ClientError, LinkClient};
pub use pd_interface::keys::{KeySource, Keys};
use pd_interface::link::{Reply, Request};
use pd_runtime::hosted::{
    self, ChannelWire, DynHandler, InitFn, IrqLine, PdControl, PdSpec, RunState, SharedMemory,
};
use pd_interface::manifest;
use pd_runtime::{Region, RegionSpec};

pub use devices::{LinkStream, UartWire};
pub use observe::{CapRequest, CapabilityPd, Invocation, InvocationLog};

/// how to boot the hosted system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootOptions {
    /// the red-team comparison mode: the verifier PD approves every plan
    /// unchecked (pd-verifier's hosted-only `unverified` feature).
    pub unverified: bool,
    /// the verifier PD's keys (`llmsh` passes the installation's).
    pub keys: Keys,
    /// hosted-only fault injection for tests: the memory PD's answers claim
    /// this pool size, as a capability PD whose state disagrees with the
    /// policy would (the verifier must refuse to run on such a state).
    pub misreport_pool_pages: Option<u64>,
    /// the policy the verifier PD enforces instead of the compiled-in
    /// `DEFAULT_POLICY` (e.g. one with `[invariants]`, for tests).
    pub policy: Option<&'static policy_verifier::Policy>,
}

impl Default for BootOptions {
    /// the public dev keys: for tests, and reported as such in every status
    /// and receipt (`keys: dev`).
    fn default() -> Self {
        Self { unverified: false, keys: Keys::dev(), misreport_pool_pages: None, policy: None }
    }
}

/// this boot's epoch, drawn inside the hosted system: the host clock's
/// seconds in the high half, 32 bits of the OS's randomness in the low
/// half (two boots in one second differ there), never 0.
pub fn draw_epoch() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut r = [0u8; 4];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut r))
        .map(|()| u32::from_le_bytes(r));
    // without randomness the nanoseconds of the clock stand in
    let low = random.unwrap_or_else(|_| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.subsec_nanos())
    });
    ((secs << 32) | u64::from(low)).max(1)
}

/// the system description the PDs were built from: the repository's, or
/// the file `LLM_OS_SYSTEM` names (for tools run from the source tree).
pub fn default_system_path() -> PathBuf {
    system_manifest::build::paths().0
}

/// why the hosted system did not boot.
#[derive(Debug)]
pub enum BootError {
    /// the .system file could not be read.
    Io(PathBuf, io::Error),
    /// the .system file breaks a Microkit rule.
    Sdf(sdf::SdfError),
    /// the .system file breaks the capability-graph property.
    Graph(graph::GraphError),
    /// the .system file is wired differently from the one the PDs were
    /// built from (their channel ids, IRQs, regions are compiled in).
    Mismatch {
        /// the first generated line that differs, as the file would have it.
        booted: String,
        /// the same line as the PDs were built with.
        built: String,
    },
    /// a PD's program image is not one the hosted system knows.
    UnknownImage {
        /// the PD.
        pd: String,
        /// its `program_image`.
        image: String,
    },
    /// a thread could not be started.
    Spawn(io::Error),
}

impl std::fmt::Display for BootError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(p, e) => write!(f, "cannot read `{}`: {e}", p.display()),
            Self::Sdf(e) => write!(f, "system description: {e}"),
            Self::Graph(e) => write!(f, "capability graph: {e}"),
            Self::Mismatch { booted, built } => write!(
                f,
                "the system description is wired differently from the one the PDs were built from \
                 (rebuild with LLM_OS_SYSTEM naming it): it gives `{booted}`, the PDs have `{built}`"
            ),
            Self::UnknownImage { pd, image } => write!(
                f,
                "pd `{pd}` has program image `{image}`, unknown to the hosted system"
            ),
            Self::Spawn(e) => write!(f, "cannot start a pd thread: {e}"),
        }
    }
}

impl std::error::Error for BootError {}

/// a PD as the hosted system sees it from outside (diagnostics only; the
/// system state proper is read through the link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdInfo {
    /// its name.
    pub name: String,
    /// running, stopped, faulted.
    pub state: RunState,
    /// current priority.
    pub priority: u8,
    /// faults since boot.
    pub faults: u64,
}

/// the hosted system.
pub struct HostedSystem;

impl HostedSystem {
    /// boot the system described by the .system file at `path`.
    pub fn boot(path: &Path) -> Result<Handle, BootError> {
        let text = std::fs::read_to_string(path).map_err(|e| BootError::Io(path.to_owned(), e))?;
        Self::boot_str(&text)
    }

    /// boot from the text of a .system file.
    pub fn boot_str(text: &str) -> Result<Handle, BootError> {
        Self::boot_str_with(text, BootOptions::default())
    }

    /// boot the system at `path` with `opts`.
    pub fn boot_with(path: &Path, opts: BootOptions) -> Result<Handle, BootError> {
        let text = std::fs::read_to_string(path).map_err(|e| BootError::Io(path.to_owned(), e))?;
        Self::boot_str_with(&text, opts)
    }

    /// boot from the text of a .system file with `opts`.
    pub fn boot_str_with(text: &str, opts: BootOptions) -> Result<Handle, BootError> {
        let sys = sdf::parse(text).map_err(BootError::Sdf)?;
        graph::check_capability_graph(&sys, &graph::llm_os_roles(&sys)).map_err(BootError::Graph)?;
        same_wiring(text)?;
        boot(&sys, opts)
    }
}

/// the booted file must give every image what its code was compiled with:
/// the generated constants of the two files are compared line by line.
fn same_wiring(text: &str) -> Result<(), BootError> {
    let (system_path, policy_path) = system_manifest::build::paths();
    let policy = std::fs::read_to_string(&policy_path)
        .map_err(|e| BootError::Io(policy_path.clone(), e))?;
    let generated = system_manifest::Manifest::from_texts(&system_path, text, &policy_path, &policy)
        .and_then(|m| system_manifest::codegen::system_rs(&m))
        .map_err(|e| {
            BootError::Sdf(sdf::SdfError {
                line: e.line,
                message: e.message,
            })
        })?;
    let built = pd_interface::manifest::GENERATED;
    if generated == built {
        return Ok(());
    }
    let mut a = generated.lines();
    let mut b = built.lines();
    loop {
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                return Err(BootError::Mismatch {
                    booted: x.unwrap_or("(nothing)").trim().to_owned(),
                    built: y.unwrap_or("(nothing)").trim().to_owned(),
                })
            }
        }
    }
}

fn init_fn<H, F>(f: F) -> InitFn
where
    H: pd_runtime::Handler + Send + 'static,
    F: Fn(&hosted::PdEnv<'_>) -> Result<H, String> + Send + Sync + 'static,
{
    Arc::new(move |env| f(env).map(|h| Box::new(h) as Box<dyn DynHandler>))
}

/// the region the manifest maps at `spec`'s setvar, as long and as
/// writable as the generated constant says.
fn region(env: &hosted::PdEnv<'_>, spec: RegionSpec) -> Result<Region, String> {
    let r = env
        .region(spec.setvar())
        .ok_or_else(|| format!("pd `{}` has no region for `{}`", env.name(), spec.setvar()))?;
    if r.len() != spec.size() || r.writable() != spec.writable() {
        return Err(format!(
            "pd `{}`: region `{}` is {} bytes ({}), the PD was built for {} ({})",
            env.name(),
            spec.setvar(),
            r.len(),
            if r.writable() { "rw" } else { "r" },
            spec.size(),
            if spec.writable() { "rw" } else { "r" }
        ));
    }
    Ok(r)
}

fn boot(sys: &sdf::SystemDescription, opts: BootOptions) -> Result<Handle, BootError> {
    let uart = UartWire::new();
    let invocations = InvocationLog::default();
    let timer = devices::TimerDevice::new();
    let controls: Vec<Arc<PdControl>> = sys
        .pds
        .iter()
        .map(|p| PdControl::new(&p.name, p.priority, p.parent.is_some()))
        .collect();
    let memories: BTreeMap<&str, SharedMemory> = sys
        .regions
        .iter()
        .map(|r| (r.name.as_str(), SharedMemory::new(r.size as usize)))
        .collect();
    let ctl = |i: usize| controls.get(i).cloned();
    let (keys, epoch) = (opts.keys, draw_epoch());

    let mut specs: Vec<PdSpec> = sys.pds.iter().map(|_| PdSpec::default()).collect();
    for ch in &sys.channels {
        for (me, other) in [(ch.a, ch.b), (ch.b, ch.a)] {
            if let (Some(spec), Some(peer)) = (specs.get_mut(me.pd), ctl(other.pd)) {
                spec.channels.insert(
                    me.id,
                    ChannelWire {
                        peer,
                        peer_id: other.id,
                        notify: me.notify,
                        pp: me.pp,
                    },
                );
            }
        }
    }
    let mut inits: Vec<InitFn> = Vec::new();
    for (i, pd) in sys.pds.iter().enumerate() {
        let (Some(spec), Some(me)) = (specs.get_mut(i), ctl(i)) else {
            continue;
        };
        for m in &pd.maps {
            if let Some(mem) = memories.get(m.mr.as_str()) {
                let view = mem.map(m.writable);
                spec.regions.insert(m.mr.clone(), view.clone());
                if let Some(sym) = &m.setvar_vaddr {
                    spec.regions.insert(sym.clone(), view);
                }
            }
        }
        for irq in &pd.irqs {
            let line = IrqLine::new(me.clone(), irq.id);
            // the board's devices, by the interrupt the manifest gives them
            if irq.irq == manifest::link::irq::UART_IRQ {
                uart.connect(line.clone());
            } else if irq.irq == manifest::timer::irq::TIMER_IRQ {
                timer.connect(line.clone());
            }
            spec.irqs.insert(irq.id, line);
        }
        for (j, child) in sys.pds.iter().enumerate() {
            if child.parent == Some(i) {
                if let (Some(id), Some(c)) = (child.child_id, ctl(j)) {
                    spec.children.insert(id, c);
                }
            }
        }
        for (slot, target) in &pd.cap_sc {
            if let Some(c) = sys.pd_index(target).and_then(ctl) {
                spec.sched_contexts.insert(*slot, c);
            }
        }
        if let (Some(p), Some(id)) = (pd.parent, pd.child_id) {
            if let Some(pc) = ctl(p) {
                spec.parent = Some((pc, id));
            }
        }
        let init = match pd.program_image.as_str() {
            "link.elf" => {
                let wire = uart.clone();
                init_fn(move |env| {
                    Ok(pd_link::Link::init(
                        wire.device(),
                        region(env, manifest::link::region::LINK_BUF)?,
                    ))
                })
            }
            "verifier.elf" if opts.unverified => init_fn(move |env| {
                Ok(pd_verifier::Verifier::init_unverified(
                    region(env, manifest::verifier::region::LINK_BUF)?,
                    Some(keys),
                    epoch,
                ))
            }),
            "verifier.elf" => {
                let policy = opts.policy.unwrap_or(&policy_verifier::DEFAULT_POLICY);
                init_fn(move |env| {
                    Ok(pd_verifier::Verifier::init_with_policy(
                        region(env, manifest::verifier::region::LINK_BUF)?,
                        policy,
                        Some(keys),
                        epoch,
                    ))
                })
            }
            "timer.elf" => {
                let clock = Mutex::new(Some(timer.clock()));
                init_fn(move |_| {
                    let c = clock.lock().map_err(|_| "clock lock")?.take();
                    // a restart of the timer PD reuses the same clock device
                    let c = c.ok_or("timer clock already taken")?;
                    Ok(pd_timer::Timer::init(c))
                })
            }
            "memory.elf" => init_fn(|env| {
                pd_memory::Memory::init(
                    region(env, manifest::memory::region::POOL_VADDR)?,
                    region(env, manifest::memory::region::LEDGER_VADDR)?,
                )
                .map_err(|e| format!("{e:?}"))
            }),
            "process.elf" => init_fn(|env| {
                let mut status = Vec::new();
                for spec in manifest::process::region::WORKERS {
                    status.push(region(env, spec)?);
                }
                let status = status
                    .try_into()
                    .map_err(|_| "one status region per worker".to_owned())?;
                pd_process::Process::init(status).map_err(|e| format!("{e:?}"))
            }),
            "firmware.elf" => {
                init_fn(|_| Ok(pd_firmware::Firmware::init(pd_firmware::QEMU_VIRT_AARCH64)))
            }
            "worker.elf" => init_fn(|env| {
                pd_worker::Worker::init(
                    env.name(),
                    region(env, manifest::worker::region::POOL_VADDR)?,
                    region(env, manifest::worker::region::LEDGER_VADDR)?,
                    region(env, manifest::worker::region::STATUS_VADDR)?,
                )
                .map_err(|e| format!("{e:?}"))
            }),
            other => {
                return Err(BootError::UnknownImage {
                    pd: pd.name.clone(),
                    image: other.to_owned(),
                })
            }
        };
        // capability PDs get the invocation log around their handler
        let init = match observe::CapabilityPd::from_image(&pd.program_image) {
            Some(kind) => observed(
                init,
                kind,
                invocations.clone(),
                opts.misreport_pool_pages.filter(|_| kind == observe::CapabilityPd::Memory),
            ),
            None => init,
        };
        inits.push(init);
    }

    let mut threads = Vec::new();
    let mut handle = Handle {
        controls: controls.clone(),
        uart: uart.clone(),
        timer,
        threads: Vec::new(),
        client: Mutex::new(None),
        invocations,
        plan_key: keys.plan,
    };
    // children start after their parent so the parent's init (e.g. process
    // setting priorities) sees them; Microkit starts all PDs at once, and
    // nothing here depends on the order beyond that.
    for ((c, spec), init) in controls.iter().zip(specs).zip(inits) {
        threads.push(hosted::spawn(c.clone(), spec, init).map_err(BootError::Spawn)?);
    }
    threads.push(handle.timer.spawn().map_err(BootError::Spawn)?);
    handle.threads = threads;
    Ok(handle)
}

/// a running hosted system; dropping it shuts the system down.
pub struct Handle {
    controls: Vec<Arc<PdControl>>,
    uart: UartWire,
    timer: devices::TimerDevice,
    threads: Vec<JoinHandle<()>>,
    client: Mutex<Option<LinkClient<LinkStream>>>,
    invocations: InvocationLog,
    /// the plan key this system was booted with: [`Handle::request`] seals
    /// plans with it, as the host's link owner does.
    plan_key: pd_interface::keys::Key,
}

fn observed(
    init: InitFn,
    pd: observe::CapabilityPd,
    log: InvocationLog,
    pool_override: Option<u64>,
) -> InitFn {
    Arc::new(move |env| {
        init(env).map(|inner| {
            Box::new(observe::Observed {
                inner,
                pd,
                log: log.clone(),
                pool_override,
            }) as Box<dyn DynHandler>
        })
    })
}

/// how long [`Handle::request`] waits for the link before giving up.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

impl Handle {
    /// the host end of the link PD's UART: a byte stream carrying frames, as
    /// qemu's serial port does. reads wait at most `timeout` (none: forever).
    pub fn transport(&self, timeout: Option<Duration>) -> LinkStream {
        LinkStream::new(self.uart.clone(), timeout)
    }

    /// one request through the link (framed postcard over the byte stream),
    /// a plan sealed with the boot's plan key for its epoch; concurrent
    /// callers are serialised.
    pub fn request(&self, req: &Request<'_>) -> Result<Reply, ClientError> {
        let mut guard = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let client = guard.get_or_insert_with(|| {
            LinkClient::new(self.transport(Some(REPLY_TIMEOUT))).with_plan_key(self.plan_key)
        });
        client.request(req)
    }

    /// every invocation that reached a capability PD since boot (hosted-only
    /// instrumentation, outside the PDs' logic).
    pub fn invocations(&self) -> &InvocationLog {
        &self.invocations
    }

    /// every PD as seen from outside.
    pub fn pds(&self) -> Vec<PdInfo> {
        self.controls
            .iter()
            .map(|c| PdInfo {
                name: c.name().to_owned(),
                state: c.run_state(),
                priority: c.priority(),
                faults: c.fault_count(),
            })
            .collect()
    }

    /// one PD as seen from outside.
    pub fn pd(&self, name: &str) -> Option<PdInfo> {
        self.pds().into_iter().find(|p| p.name == name)
    }

    /// make PD `name` fault (a hosted-only hook for tests and demos: its
    /// parent's `fault` handler runs, as on seL4). false if there is no such PD.
    pub fn inject_fault(&self, name: &str) -> bool {
        match self.controls.iter().find(|c| c.name() == name) {
            Some(c) => {
                c.inject_fault();
                true
            }
            None => false,
        }
    }

    /// stop every PD and device thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        for c in &self.controls {
            c.shutdown();
        }
        self.timer.stop();
        self.uart.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop();
    }
}
