//! the hosted backend: each PD runs its unchanged handler on its own thread.
//!
//! what Microkit does with kernel objects this does with a mutex-guarded
//! inbox per PD, modelled on the seL4 objects a PD waits on:
//!
//! - a notification word: [`Channel::notify`] ORs the channel bit of the
//!   receiver's end into it, so signals coalesce until the receiver runs, and
//!   the receiver sees them as one badge (libmicrokit delivers them lowest
//!   channel first);
//! - an endpoint: [`Channel::pp_call`] queues the caller's message registers
//!   and blocks the caller until the callee replies (synchronous PPC); the
//!   wiring refuses a PPC to a PD of equal or lower priority, as the
//!   the Microkit tool does;
//! - the bound notification is checked before the endpoint, as seL4's
//!   `receiveIPC` does;
//! - a child's fault is a message to its parent with the fault badge; the
//!   child stays suspended until the parent replies, resumes or restarts it.
//!
//! a handler returning `Err` is this backend's fault (on seL4 the PD would
//! take a fault). a PD can only reach the channels, IRQs, regions, children
//! and scheduling contexts its [`PdSpec`] (built from the .system file) gives it.
//!
//! differences from seL4, stated plainly: threads are scheduled by the host,
//! so priorities only order PPCs (callee above caller) and are recorded for
//! read-back; a restart rebuilds the handler by running `init` again (seL4
//! keeps the PD's memory, so PDs must re-initialise their state in `init`);
//! a PPC into a PD that faulted returns [`RuntimeError::PeerFaulted`] instead
//! of blocking forever.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::base::{
    self, Channel, Child, MessageInfo, Outcome, RuntimeError, SchedContext, MSG_MAX_WORDS,
};
use crate::{Handler, Region};

/// a hosted region: a shared buffer of words.
#[derive(Clone)]
pub struct RegionBacking(Arc<[AtomicU64]>);

impl RegionBacking {
    pub(crate) fn load(&self, word: usize) -> u64 {
        self.0.get(word).map_or(0, |w| w.load(Ordering::Acquire))
    }
    pub(crate) fn store(&self, word: usize, v: u64) {
        if let Some(w) = self.0.get(word) {
            w.store(v, Ordering::Release);
        }
    }
}

/// the memory behind one `<memory_region>`; each `<map>` of it is a
/// [`Region`] view with its own permissions.
#[derive(Clone)]
pub struct SharedMemory {
    words: RegionBacking,
    len: usize,
}

impl SharedMemory {
    /// zeroed memory of `len` bytes (rounded up to a word).
    pub fn new(len: usize) -> Self {
        let words: Arc<[AtomicU64]> = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        Self {
            words: RegionBacking(words),
            len,
        }
    }

    /// a mapping of it.
    pub fn map(&self, writable: bool) -> Region {
        Region::from_backing(self.words.clone(), self.len, writable)
    }
}

type Reply = Result<(MessageInfo, Vec<u64>), RuntimeError>;

struct Call {
    channel: Channel,
    info: MessageInfo,
    words: Vec<u64>,
    reply: mpsc::SyncSender<Reply>,
}

struct FaultNote {
    child: Child,
    info: MessageInfo,
    words: Vec<u64>,
}

/// whether a PD runs, as its parent and the system see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    /// taking events.
    Running,
    /// suspended by its parent (`microkit_pd_stop`).
    Stopped,
    /// its handler failed; waiting for its parent (or dead if it has none).
    Faulted,
    /// the system shut down.
    Exited,
}

struct InboxState {
    notes: u64,
    calls: VecDeque<Call>,
    faults: VecDeque<FaultNote>,
    run: RunState,
    restart: bool,
    exit: bool,
    has_parent: bool,
    inject_fault: bool,
}

enum Next {
    Exit,
    InjectedFault,
    Restart,
    Notified(u64),
    Call(Call),
    Fault(FaultNote),
}

/// one PD's notification word, endpoint queue and thread state.
pub struct PdControl {
    name: String,
    declared_priority: u8,
    priority: AtomicU8,
    consumed_ns: AtomicU64,
    total_ns: AtomicU64,
    faults: AtomicU64,
    state: Mutex<InboxState>,
    cv: Condvar,
}

impl PdControl {
    /// the control block of a PD declared with `priority` in the .system file.
    pub fn new(name: &str, priority: u8, has_parent: bool) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            declared_priority: priority,
            priority: AtomicU8::new(priority),
            consumed_ns: AtomicU64::new(0),
            total_ns: AtomicU64::new(0),
            faults: AtomicU64::new(0),
            state: Mutex::new(InboxState {
                notes: 0,
                calls: VecDeque::new(),
                faults: VecDeque::new(),
                run: RunState::Running,
                restart: false,
                exit: false,
                has_parent,
                inject_fault: false,
            }),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// the PD's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// current priority (declared, or as set by its parent).
    pub fn priority(&self) -> u8 {
        self.priority.load(Ordering::Relaxed)
    }

    /// the priority in the .system file: the PD's maximum controlled priority.
    pub fn declared_priority(&self) -> u8 {
        self.declared_priority
    }

    /// how the PD runs now.
    pub fn run_state(&self) -> RunState {
        self.lock().run
    }

    /// faults taken since boot.
    pub fn fault_count(&self) -> u64 {
        self.faults.load(Ordering::Relaxed)
    }

    /// handler time since boot, in microseconds.
    pub fn total_us(&self) -> u64 {
        self.total_ns.load(Ordering::Relaxed) / 1000
    }

    /// signal bit `bit` of this PD's notification word (what a notification
    /// cap badged with that bit does).
    pub fn signal(&self, bit: u8) {
        let mut st = self.lock();
        st.notes |= 1u64 << (bit & 63);
        drop(st);
        self.cv.notify_all();
    }

    fn set_run(&self, run: RunState) {
        let mut st = self.lock();
        if st.run != RunState::Exited {
            st.run = run;
        }
        drop(st);
        self.cv.notify_all();
    }

    fn request_restart(&self) {
        let mut st = self.lock();
        st.restart = true;
        drop(st);
        self.cv.notify_all();
    }

    /// make the PD fault as if its code had hit an unmapped address (a test
    /// and demo hook of the hosted system; seL4 needs no help to fault).
    pub fn inject_fault(&self) {
        let mut st = self.lock();
        st.inject_fault = true;
        drop(st);
        self.cv.notify_all();
    }

    /// ask the PD's thread to end; pending and future PPCs get `Shutdown`.
    pub fn shutdown(&self) {
        let mut st = self.lock();
        st.exit = true;
        for c in st.calls.drain(..) {
            let _ = c.reply.send(Err(RuntimeError::Shutdown));
        }
        drop(st);
        self.cv.notify_all();
    }

    fn next(&self) -> Next {
        let mut st = self.lock();
        loop {
            if st.exit {
                st.run = RunState::Exited;
                return Next::Exit;
            }
            if st.restart {
                st.restart = false;
                st.run = RunState::Running;
                return Next::Restart;
            }
            if st.run == RunState::Running {
                if st.inject_fault {
                    st.inject_fault = false;
                    return Next::InjectedFault;
                }
                if st.notes != 0 {
                    let bits = st.notes;
                    st.notes = 0;
                    return Next::Notified(bits);
                }
                if let Some(f) = st.faults.pop_front() {
                    return Next::Fault(f);
                }
                if let Some(c) = st.calls.pop_front() {
                    return Next::Call(c);
                }
            } else if st.run == RunState::Faulted && !st.has_parent {
                // nobody will restart it: callers must not block forever
                for c in st.calls.drain(..) {
                    let _ = c.reply.send(Err(RuntimeError::PeerFaulted));
                }
            }
            st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn call(&self, channel: Channel, info: MessageInfo, words: Vec<u64>) -> Reply {
        let (tx, rx) = mpsc::sync_channel(1);
        {
            let mut st = self.lock();
            if st.exit {
                return Err(RuntimeError::Shutdown);
            }
            if st.run == RunState::Faulted && !st.has_parent {
                return Err(RuntimeError::PeerFaulted);
            }
            st.calls.push_back(Call {
                channel,
                info,
                words,
                reply: tx,
            });
        }
        self.cv.notify_all();
        rx.recv().unwrap_or(Err(RuntimeError::PeerFaulted))
    }

    fn deliver_fault(&self, note: FaultNote) {
        let mut st = self.lock();
        st.faults.push_back(note);
        drop(st);
        self.cv.notify_all();
    }
}

/// an interrupt line into a PD: a device raises it, the PD's `irq_ack`
/// re-arms it. a line raised while unacknowledged is remembered, not lost.
pub struct IrqLine {
    target: Arc<PdControl>,
    channel: u8,
    state: Mutex<(bool, bool)>, // (masked, pending)
}

impl IrqLine {
    /// the line delivering to `target` on its channel `channel` (`<irq id=…>`).
    pub fn new(target: Arc<PdControl>, channel: u8) -> Arc<Self> {
        Arc::new(Self {
            target,
            channel,
            state: Mutex::new((false, false)),
        })
    }

    /// the device asserts the interrupt.
    pub fn raise(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.0 {
            s.1 = true;
        } else {
            s.0 = true;
            drop(s);
            self.target.signal(self.channel);
        }
    }

    fn ack(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if s.1 {
            s.1 = false;
            drop(s);
            self.target.signal(self.channel);
        } else {
            s.0 = false;
        }
    }
}

/// one end of a channel as the .system file gives it to a PD.
#[derive(Clone)]
pub struct ChannelWire {
    /// the PD at the other end.
    pub peer: Arc<PdControl>,
    /// the other end's channel id (the bit it is signalled on).
    pub peer_id: u8,
    /// this end may signal (`notify`, default true).
    pub notify: bool,
    /// this end may PPC into the peer (`pp`).
    pub pp: bool,
}

/// everything the .system file gives one PD; built by `hosted-system`.
#[derive(Default)]
pub struct PdSpec {
    /// `<channel>` ends of this PD by id.
    pub channels: BTreeMap<u8, ChannelWire>,
    /// `<irq>` lines by channel id.
    pub irqs: BTreeMap<u8, Arc<IrqLine>>,
    /// child PDs by their `id`.
    pub children: BTreeMap<u8, Arc<PdControl>>,
    /// `<cspace><cap_sc slot=…>` grants.
    pub sched_contexts: BTreeMap<u8, Arc<PdControl>>,
    /// mapped regions by memory region name.
    pub regions: HashMap<String, Region>,
    /// the parent PD, if this is a child.
    pub parent: Option<(Arc<PdControl>, u8)>,
}

/// what `init` sees: the PD's regions.
pub struct PdEnv<'a> {
    spec: &'a PdSpec,
    name: &'a str,
}

impl PdEnv<'_> {
    /// the region mapped into this PD from `<memory_region name=…>`.
    pub fn region(&self, mr: &str) -> Option<Region> {
        self.spec.regions.get(mr).cloned()
    }

    /// the PD's name.
    pub fn name(&self) -> &str {
        self.name
    }
}

/// a handler behind a pointer, for PDs whose type the hosted system does not know.
pub trait DynHandler: Send {
    /// [`base::dispatch`] with the error rendered for the fault log.
    fn dispatch(&mut self, badge: u64, tag: MessageInfo) -> Result<Outcome, String>;
}

impl<H: Handler + Send> DynHandler for H {
    fn dispatch(&mut self, badge: u64, tag: MessageInfo) -> Result<Outcome, String> {
        base::dispatch(self, badge, tag).map_err(|e| format!("{e:?}"))
    }
}

/// the Microkit `init`: builds the handler on the PD's own thread.
pub type InitFn = Arc<dyn Fn(&PdEnv<'_>) -> Result<Box<dyn DynHandler>, String> + Send + Sync>;

struct Context {
    name: &'static str,
    spec: PdSpec,
    me: Arc<PdControl>,
}

thread_local! {
    static CTX: RefCell<Option<Arc<Context>>> = const { RefCell::new(None) };
    static MRS: RefCell<[u64; MSG_MAX_WORDS]> = const { RefCell::new([0; MSG_MAX_WORDS]) };
}

fn ctx() -> Option<Arc<Context>> {
    CTX.with(|c| c.borrow().clone())
}

/// start a PD's thread: run `init`, then the event loop, until shutdown.
pub fn spawn(
    me: Arc<PdControl>,
    spec: PdSpec,
    init: InitFn,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let name: &'static str = Box::leak(me.name().to_owned().into_boxed_str());
    std::thread::Builder::new()
        .name(format!("pd-{name}"))
        .spawn(move || {
            let ctx = Arc::new(Context {
                name,
                spec,
                me: me.clone(),
            });
            CTX.with(|c| *c.borrow_mut() = Some(ctx.clone()));
            event_loop(&ctx, &init);
            CTX.with(|c| *c.borrow_mut() = None);
        })
}

fn set_mrs(words: &[u64]) {
    MRS.with(|m| {
        let mut m = m.borrow_mut();
        for (dst, src) in m.iter_mut().zip(words.iter()) {
            *dst = *src;
        }
    });
}

fn take_mrs(count: usize) -> Vec<u64> {
    MRS.with(|m| m.borrow().iter().take(count).copied().collect())
}

fn event_loop(ctx: &Arc<Context>, init: &InitFn) {
    let env = PdEnv {
        spec: &ctx.spec,
        name: ctx.name,
    };
    let mut handler = match init(&env) {
        Ok(h) => Some(h),
        Err(e) => {
            fault_self(ctx, &e, None);
            None
        }
    };
    loop {
        let next = ctx.me.next();
        let (badge, tag, reply) = match next {
            Next::Exit => return,
            Next::InjectedFault => {
                fault_self(ctx, "injected fault (vm fault)", None);
                continue;
            }
            Next::Restart => {
                handler = match init(&env) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        fault_self(ctx, &e, None);
                        None
                    }
                };
                continue;
            }
            Next::Notified(bits) => (bits, MessageInfo::default(), None),
            Next::Call(c) => {
                set_mrs(&c.words);
                (base::ppc_badge(c.channel), c.info, Some(Ok(c.reply)))
            }
            Next::Fault(f) => {
                set_mrs(&f.words);
                (base::fault_badge(f.child), f.info, Some(Err(f.child)))
            }
        };
        let Some(h) = handler.as_mut() else {
            fault_self(ctx, "no handler", reply.and_then(Result::ok));
            continue;
        };
        let started = Instant::now();
        let result = h.dispatch(badge, tag);
        let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        ctx.me.consumed_ns.fetch_add(spent, Ordering::Relaxed);
        ctx.me.total_ns.fetch_add(spent, Ordering::Relaxed);
        match (result, reply) {
            (Ok(Outcome::Reply(info)), Some(Ok(tx))) => {
                let _ = tx.send(Ok((info, take_mrs(info.count()))));
            }
            (Ok(Outcome::Reply(_)), Some(Err(child))) => {
                // replying to a fault resumes the child at the faulting point
                if let Some(c) = ctx.spec.children.get(&(child.index() as u8)) {
                    c.set_run(RunState::Running);
                }
            }
            (Ok(_), _) => {}
            (Err(e), reply) => fault_self(ctx, &e, reply.and_then(Result::ok)),
        }
    }
}

fn fault_self(ctx: &Arc<Context>, why: &str, pending: Option<mpsc::SyncSender<Reply>>) {
    if let Some(tx) = pending {
        let _ = tx.send(Err(RuntimeError::PeerFaulted));
    }
    ctx.me.faults.fetch_add(1, Ordering::Relaxed);
    ctx.me.set_run(RunState::Faulted);
    if std::env::var_os("LLM_OS_PD_DEBUG").is_some() {
        eprintln!("[{}] fault: {why}", ctx.name);
    }
    if let Some((parent, id)) = &ctx.spec.parent {
        // seL4 delivers the fault as a message with the fault badge; the
        // label says what kind (here: 0, a user-level failure)
        let words = why
            .bytes()
            .take(8)
            .fold(0u64, |acc, b| (acc << 8) | u64::from(b));
        parent.deliver_fault(FaultNote {
            child: Child::new(usize::from(*id)),
            info: MessageInfo::new(0, 1),
            words: vec![words],
        });
    }
}

/// the platform calls of the handles in [`crate::base`].
pub(crate) mod platform {
    use super::*;

    pub(crate) fn pd_name() -> &'static str {
        ctx().map_or("?", |c| c.name)
    }

    pub(crate) fn debug_put(s: &str) {
        if std::env::var_os("LLM_OS_PD_DEBUG").is_some() {
            eprint!("{s}");
        }
    }

    pub(crate) fn with_msg_regs<R>(f: impl FnOnce(&mut [u64; MSG_MAX_WORDS]) -> R) -> R {
        MRS.with(|m| f(&mut m.borrow_mut()))
    }

    fn wire(ch: Channel) -> Result<(Arc<Context>, ChannelWire), RuntimeError> {
        let c = ctx().ok_or(RuntimeError::NotPermitted {
            channel: ch.index() as u8,
        })?;
        let w = c.spec.channels.get(&(ch.index() as u8)).cloned();
        w.map(|w| (c, w)).ok_or(RuntimeError::NotPermitted {
            channel: ch.index() as u8,
        })
    }

    pub(crate) fn notify(ch: Channel) -> Result<(), RuntimeError> {
        let (_, w) = wire(ch)?;
        if !w.notify {
            return Err(RuntimeError::NotPermitted {
                channel: ch.index() as u8,
            });
        }
        w.peer.signal(w.peer_id);
        Ok(())
    }

    pub(crate) fn irq_ack(ch: Channel) -> Result<(), RuntimeError> {
        let c = ctx().ok_or(RuntimeError::NotPermitted {
            channel: ch.index() as u8,
        })?;
        let line = c
            .spec
            .irqs
            .get(&(ch.index() as u8))
            .ok_or(RuntimeError::NotPermitted {
                channel: ch.index() as u8,
            })?;
        line.ack();
        Ok(())
    }

    pub(crate) fn pp_call(ch: Channel, info: MessageInfo) -> Result<MessageInfo, RuntimeError> {
        let (_, w) = wire(ch)?;
        if !w.pp {
            return Err(RuntimeError::NotPermitted {
                channel: ch.index() as u8,
            });
        }
        let words = take_mrs(info.count());
        let callee_ch = Channel::try_new(usize::from(w.peer_id))
            .ok_or(RuntimeError::NotPermitted { channel: w.peer_id })?;
        let (reply, words) = w.peer.call(callee_ch, info, words)?;
        set_mrs(&words);
        Ok(reply)
    }

    fn child(ch: Child) -> Result<Arc<PdControl>, RuntimeError> {
        let c = ctx().ok_or(RuntimeError::NoSuchChild {
            child: ch.index() as u8,
        })?;
        c.spec
            .children
            .get(&(ch.index() as u8))
            .cloned()
            .ok_or(RuntimeError::NoSuchChild {
                child: ch.index() as u8,
            })
    }

    pub(crate) fn child_restart(ch: Child, _entry: usize) -> Result<(), RuntimeError> {
        child(ch)?.request_restart();
        Ok(())
    }

    pub(crate) fn child_stop(ch: Child) -> Result<(), RuntimeError> {
        child(ch)?.set_run(RunState::Stopped);
        Ok(())
    }

    pub(crate) fn child_resume(ch: Child) -> Result<(), RuntimeError> {
        child(ch)?.set_run(RunState::Running);
        Ok(())
    }

    pub(crate) fn child_set_priority(ch: Child, prio: u8) -> Result<(), RuntimeError> {
        let c = child(ch)?;
        if prio > c.declared_priority {
            // seL4_RangeError: above the authority's maximum controlled priority
            return Err(RuntimeError::Kernel(4));
        }
        c.priority.store(prio, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn sc_consumed_us(sc: SchedContext) -> Result<u64, RuntimeError> {
        let slot = sc.slot() as u8;
        let c = ctx().ok_or(RuntimeError::NoSuchCap { slot })?;
        let pd = c
            .spec
            .sched_contexts
            .get(&slot)
            .ok_or(RuntimeError::NoSuchCap { slot })?;
        Ok(pd.consumed_ns.swap(0, Ordering::Relaxed) / 1000)
    }
}
