//! the seL4 backend (aarch64, MCS kernel, Microkit 2.3.0 with seL4 16.0.0):
//! what libmicrokit does for C PDs, in Rust.
//!
//! - the symbols the Microkit tool patches: `microkit_name`,
//!   `microkit_passive`, `microkit_irqs`, `microkit_notifications`,
//!   `microkit_pps`, `microkit_ioports` (all must exist or the tool fails);
//! - the entry point (`_start`, emitted by [`protection_domain!`]) and the
//!   event loop of libmicrokit's `handler_loop`;
//! - the raw MCS syscalls and the few invocations Microkit PDs use.
//!
//! the IPC buffer: the tool maps it in the top page of the address space and
//! starts the PD with `sp = pd_stack_top = ipc_buffer - 4 KiB` (tool
//! `sel4.rs`: `pd_ipc_buffer`, `pd_stack_top`), so the entry derives it from
//! the initial stack pointer instead of hard-coding `seL4_UserVSpaceTop`,
//! which differs between the hypervisor and EL1 kernel configs.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::base::{
    self, Channel, Child, MessageInfo, Outcome, RuntimeError, SchedContext, MSG_MAX_WORDS,
};
use crate::Handler;

mod abi;

// the raw syscalls stay inside the runtime: a PD reaches the kernel only
// through `Channel`, `Child` and `SchedContext`, which check the manifest's grants
pub(crate) use abi::*;

/// a word the tool patches before the PD runs; read with a volatile load.
#[repr(transparent)]
pub struct Patched<T>(UnsafeCell<T>);

// safety: written only by the Microkit tool into the image; read-only at run time.
unsafe impl<T> Sync for Patched<T> {}

impl<T: Copy> Patched<T> {
    fn get(&self) -> T {
        // safety: a valid, aligned T for the program's lifetime, never written at run time.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
}

/// `char microkit_name[MICROKIT_PD_NAME_LENGTH]`.
#[unsafe(no_mangle)]
#[used]
pub static microkit_name: Patched<[u8; 64]> = Patched(UnsafeCell::new([0; 64]));
/// `bool microkit_passive`.
#[unsafe(no_mangle)]
#[used]
pub static microkit_passive: Patched<u8> = Patched(UnsafeCell::new(0));
/// `seL4_Word microkit_irqs`: bit i = channel i is an IRQ.
#[unsafe(no_mangle)]
#[used]
pub static microkit_irqs: Patched<u64> = Patched(UnsafeCell::new(0));
/// `seL4_Word microkit_notifications`: bit i = channel i may notify.
#[unsafe(no_mangle)]
#[used]
pub static microkit_notifications: Patched<u64> = Patched(UnsafeCell::new(0));
/// `seL4_Word microkit_pps`: bit i = channel i may PPC.
#[unsafe(no_mangle)]
#[used]
pub static microkit_pps: Patched<u64> = Patched(UnsafeCell::new(0));
/// `seL4_Word microkit_ioports` (x86 only; must exist on every arch).
#[unsafe(no_mangle)]
#[used]
pub static microkit_ioports: Patched<u64> = Patched(UnsafeCell::new(0));

static IPC_BUFFER: AtomicUsize = AtomicUsize::new(0);

/// the IPC buffer's message registers.
fn msg_ptr() -> *mut u64 {
    (IPC_BUFFER.load(Ordering::Relaxed) + IPC_MSG_OFFSET) as *mut u64
}

fn mr(i: usize) -> u64 {
    if i >= MSG_MAX_WORDS {
        return 0;
    }
    // safety: the IPC buffer page is mapped rw for this PD's only thread and
    // `i` is inside the message array.
    unsafe { core::ptr::read_volatile(msg_ptr().add(i)) }
}

fn set_mr(i: usize, v: u64) {
    if i < MSG_MAX_WORDS {
        // safety: as in `mr`.
        unsafe { core::ptr::write_volatile(msg_ptr().add(i), v) }
    }
}

fn set_cap(i: usize, cptr: u64) {
    let p = (IPC_BUFFER.load(Ordering::Relaxed) + IPC_CAPS_OFFSET) as *mut u64;
    if i < 3 {
        // safety: `caps_or_badges[i]` of the mapped IPC buffer.
        unsafe { core::ptr::write_volatile(p.add(i), cptr) }
    }
}

/// storage for a PD's handler (so large handlers do not live on the stack).
///
/// claimed by [`run`] at the entry only, with sp at the stack top: at boot,
/// or after the parent rewrote pc and sp (a fault restart or
/// `process.restart`). the thread that held an earlier `&mut` is gone with
/// its stack, so the new handler replaces the old one; a `run` from deeper in
/// the stack (from `init`, say) crashes instead of aliasing it.
pub struct HandlerCell<T>(UnsafeCell<MaybeUninit<T>>);

// safety: a Microkit PD has exactly one thread, and the cell's content is
// reached only through the one `&mut` that a claim at the entry hands out.
unsafe impl<T> Sync for HandlerCell<T> {}

impl<T> HandlerCell<T> {
    /// empty storage.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Self(UnsafeCell::new(MaybeUninit::uninit()))
    }

    /// store `h` and hand out the only reference to it. only [`run`] calls
    /// this, after checking that it runs on a fresh stack.
    #[allow(clippy::mut_from_ref, reason = "a claim happens only on a fresh stack: the one &mut is unique")]
    fn claim(&'static self, h: T) -> &'static mut T {
        // safety: `run` checked that sp was the stack top at the entry, so no
        // frame of an earlier execution (which might hold a claim) is live:
        // boot, or a restart that discarded that execution. the old value is
        // overwritten, not dropped: handlers own no heap.
        unsafe { (*self.0.get()).write(h) }
    }
}

/// crash the PD the way libmicrokit does: a fault its parent or the monitor sees.
pub(crate) fn crash(code: u64) -> ! {
    loop {
        // safety: an undefined instruction raises a user exception; the
        // kernel turns it into a fault message to the fault handler. `code`
        // is left in x0 for the fault report.
        unsafe { core::arch::asm!("udf #0", in("x0") code, options(nostack)) };
    }
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    debug_put("pd panicked\n");
    crash(0xdead)
}

/// the PD's main: entry from `_start` with the initial stack pointer.
///
/// # Safety
///
/// call only from the entry [`protection_domain!`] emits, with the stack
/// pointer `_start` found: the claim of the handler relies on it.
#[doc(hidden)]
pub unsafe fn run<T: Handler>(
    initial_sp: usize,
    cell: &'static HandlerCell<T>,
    init: fn() -> Result<T, T::Error>,
) -> ! {
    let ipc = initial_sp.wrapping_add(PAGE_SIZE);
    // a second entry is a restart only if it starts at the stack top, as the
    // tool and the parent's restart place it; a `run` from deeper in the
    // stack (from `init`, say) must not alias the handler
    let before = IPC_BUFFER.load(Ordering::Acquire);
    if before != 0 && before != ipc {
        crash(3)
    }
    IPC_BUFFER.store(ipc, Ordering::Release);
    let Ok(h) = init() else { crash(1) };
    let handler = cell.claim(h);
    // libmicrokit acks every IRQ once after start (seL4 issue 1536)
    let irqs = microkit_irqs.get();
    for ch in 0..base::MAX_CHANNELS {
        if irqs & (1 << ch) != 0 {
            if let Some(c) = Channel::try_new(ch) {
                let _ = irq_ack(c);
            }
        }
    }
    let mut reply: Option<MessageInfo> = None;
    let mut signal_monitor = microkit_passive.get() != 0;
    loop {
        let (badge, tag) = if let Some(r) = reply.take() {
            sys_reply_recv(INPUT_CAP, r, REPLY_CAP)
        } else if signal_monitor {
            // a passive PD tells the monitor it is ready to lose its SC
            signal_monitor = false;
            sys_nbsend_recv(MONITOR_EP, MessageInfo::new(0, 0), INPUT_CAP, REPLY_CAP)
        } else {
            sys_recv(INPUT_CAP, REPLY_CAP)
        };
        match base::dispatch(handler, badge, tag) {
            Ok(Outcome::Reply(r)) => reply = Some(r),
            Ok(Outcome::NoReply) => {}
            Err(_) => crash(2),
        }
    }
}

/// declare the PD: its handler type and its `init`. emits `_start` at the
/// start of `.text` (the image's entry, [`crate::DEFAULT_ENTRY`]).
#[macro_export]
macro_rules! protection_domain {
    ($ty:ty, $init:path) => {
        static __PD_HANDLER: $crate::sel4::HandlerCell<$ty> = $crate::sel4::HandlerCell::new();

        #[unsafe(no_mangle)]
        extern "C" fn __pd_entry(initial_sp: usize) -> ! {
            // safety: `_start` below is the only caller, with its own sp.
            unsafe { $crate::sel4::run::<$ty>(initial_sp, &__PD_HANDLER, $init) }
        }

        core::arch::global_asm!(
            ".section .text.start, \"ax\"",
            ".global _start",
            ".type _start, %function",
            "_start:",
            "    mov x0, sp",
            "    b {entry}",
            entry = sym __pd_entry,
        );
    };
}

pub(crate) fn pd_name() -> &'static str {
    // safety: the name array lives for the program and is never written at
    // run time; a shared reference to it is sound.
    let bytes: &'static [u8; 64] = unsafe { &*microkit_name.0.get() };
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    core::str::from_utf8(bytes.get(..len).unwrap_or(&[])).unwrap_or("?")
}

pub(crate) fn debug_put(s: &str) {
    if cfg!(feature = "microkit-debug") {
        for b in s.bytes() {
            sys_debug_putchar(b);
        }
    }
}

pub(crate) fn with_msg_regs<R>(f: impl FnOnce(&mut [u64; MSG_MAX_WORDS]) -> R) -> R {
    let mut regs = [0u64; MSG_MAX_WORDS];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = mr(i);
    }
    let out = f(&mut regs);
    for (i, r) in regs.iter().enumerate() {
        set_mr(i, *r);
    }
    out
}

fn allowed(mask: u64, ch: Channel) -> Result<u64, RuntimeError> {
    if mask & (1u64 << ch.index()) == 0 {
        return Err(RuntimeError::NotPermitted {
            channel: ch.index() as u8,
        });
    }
    Ok(ch.index() as u64)
}

fn check(info: MessageInfo) -> Result<(), RuntimeError> {
    match info.label() {
        0 => Ok(()),
        e => Err(RuntimeError::Kernel(e as u8)),
    }
}

pub(crate) fn notify(ch: Channel) -> Result<(), RuntimeError> {
    let i = allowed(microkit_notifications.get(), ch)?;
    sys_send(BASE_OUTPUT_NOTIFICATION_CAP + i, MessageInfo::new(0, 0));
    Ok(())
}

pub(crate) fn irq_ack(ch: Channel) -> Result<(), RuntimeError> {
    let i = allowed(microkit_irqs.get(), ch)?;
    check(sys_call(BASE_IRQ_CAP + i, MessageInfo::new(IRQ_ACK_IRQ, 0)))
}

pub(crate) fn pp_call(ch: Channel, info: MessageInfo) -> Result<MessageInfo, RuntimeError> {
    let i = allowed(microkit_pps.get(), ch)?;
    Ok(sys_call(BASE_ENDPOINT_CAP + i, info))
}

pub(crate) fn child_restart(child: Child, entry: usize) -> Result<(), RuntimeError> {
    // the child starts on a fresh stack: the tool gives every PD of the image
    // the same `pd_stack_top`, which is ours (the IPC buffer's page minus one).
    // with the old sp the child would start wherever it stopped, deeper each
    // restart, and derive a wrong IPC buffer from it.
    let stack_top = IPC_BUFFER.load(Ordering::Relaxed).wrapping_sub(PAGE_SIZE);
    // seL4_TCB_WriteRegisters(tcb, resume = true, arch_flags = 0, count = 2,
    // {pc, sp}): seL4_UserContext on aarch64 begins pc, sp
    set_mr(0, 1);
    set_mr(1, 2);
    set_mr(2, entry as u64);
    set_mr(3, stack_top as u64);
    check(sys_call(
        BASE_TCB_CAP + child.index() as u64,
        MessageInfo::new(TCB_WRITE_REGISTERS, 4),
    ))
}

pub(crate) fn child_stop(child: Child) -> Result<(), RuntimeError> {
    check(sys_call(
        BASE_TCB_CAP + child.index() as u64,
        MessageInfo::new(TCB_SUSPEND, 0),
    ))
}

pub(crate) fn child_resume(child: Child) -> Result<(), RuntimeError> {
    check(sys_call(
        BASE_TCB_CAP + child.index() as u64,
        MessageInfo::new(TCB_RESUME, 0),
    ))
}

pub(crate) fn child_set_priority(child: Child, prio: u8) -> Result<(), RuntimeError> {
    // seL4_TCB_SetPriority(tcb, authority = the child's own TCB, prio): the
    // child's MCP (its declared priority) is the ceiling
    let tcb = BASE_TCB_CAP + child.index() as u64;
    set_cap(0, tcb);
    set_mr(0, u64::from(prio));
    check(sys_call(
        tcb,
        MessageInfo::with_extra_caps(TCB_SET_PRIORITY, 1, 1),
    ))
}

pub(crate) fn sc_consumed_us(sc: SchedContext) -> Result<u64, RuntimeError> {
    // microkit_cspace_root_slot_to_cptr
    let cptr = (sc.slot() as u64) << (64 - PD_ROOT_CAP_BITS);
    let r = sys_call(cptr, MessageInfo::new(SCHED_CONTEXT_CONSUMED, 0));
    if r.count() == 0 && r.label() != 0 {
        return Err(RuntimeError::Kernel(r.label() as u8));
    }
    Ok(mr(0))
}

/// a mapped region: base address and nothing else.
#[derive(Clone)]
pub struct RegionBacking(usize);

impl RegionBacking {
    pub(crate) fn load(&self, word: usize) -> u64 {
        // safety: `Region` checked `word` against the region's length; the
        // mapping at `self.0` is given by the .system file (setvar_vaddr).
        unsafe { core::ptr::read_volatile((self.0 as *const u64).add(word)) }
    }
    pub(crate) fn store(&self, word: usize, v: u64) {
        // safety: as in `load`, and `Region` checked the mapping is writable.
        unsafe { core::ptr::write_volatile((self.0 as *mut u64).add(word), v) }
    }
}

impl crate::Region {
    /// the region mapped at the address the tool patched into `var`
    /// (`setvar_vaddr`), as long and as writable as the manifest's `<map>`
    /// says: the generated code declares `var` with both, no caller does.
    pub fn from_setvar(var: &crate::MappedVar) -> Self {
        let spec = var.spec();
        Self::from_backing(RegionBacking(var.vaddr()), spec.size(), spec.writable())
    }
}
