//! raw aarch64 syscalls of the MCS kernel and the constants of the Microkit
//! 2.3.0 / seL4 16.0.0 ABI this backend relies on.
//!
//! sources: libmicrokit/include/microkit.h and src/main.c (cap slots,
//! badges), libsel4 `syscall.xml` (the `api-mcs` numbering),
//! `object-api.xml` (invocation labels for an MCS kernel without
//! `CONFIG_HARDWARE_DEBUG_API`, as Microkit builds it), libsel4's aarch64
//! `syscalls.h` (x0 cap/badge, x1 tag, x2..x5 MR0..3, x6 reply, x7 number,
//! x8 NBSendRecv destination).

use crate::base::MessageInfo;

/// the PD's endpoint/notification it receives on (libmicrokit `INPUT_CAP`).
pub const INPUT_CAP: u64 = 1;
/// the reply object (libmicrokit `REPLY_CAP`).
pub const REPLY_CAP: u64 = 4;
/// the monitor's endpoint (`MONITOR_EP`).
pub const MONITOR_EP: u64 = 5;
/// `BASE_OUTPUT_NOTIFICATION_CAP`.
pub const BASE_OUTPUT_NOTIFICATION_CAP: u64 = 10;
/// `BASE_ENDPOINT_CAP`.
pub const BASE_ENDPOINT_CAP: u64 = 74;
/// `BASE_IRQ_CAP`.
pub const BASE_IRQ_CAP: u64 = 138;
/// `BASE_TCB_CAP`.
pub const BASE_TCB_CAP: u64 = 202;
/// `PD_ROOT_CAP_BITS` (for `<cspace>` slots).
pub const PD_ROOT_CAP_BITS: u64 = 6;
/// `seL4_PageBits`.
pub const PAGE_SIZE: usize = 4096;

/// offset of `msg[0]` in `seL4_IPCBuffer` (after the tag).
pub const IPC_MSG_OFFSET: usize = 8;
/// offset of `caps_or_badges[0]` (tag, 120 MRs, userData).
pub const IPC_CAPS_OFFSET: usize = 8 + 120 * 8 + 8;

/// invocation labels (seL4 16.0.0, MCS). the Microkit `debug` config turns
/// on the hardware debug API, which inserts four TCB labels before
/// `TCBSetTLSBase`: labels from there on shift by 4 (feature `microkit-debug`).
pub const TCB_WRITE_REGISTERS: u64 = 3;
/// `TCBSetPriority`.
pub const TCB_SET_PRIORITY: u64 = 6;
/// `TCBSuspend`.
pub const TCB_SUSPEND: u64 = 12;
/// `TCBResume`.
pub const TCB_RESUME: u64 = 13;
const DEBUG_SHIFT: u64 = if cfg!(feature = "microkit-debug") {
    4
} else {
    0
};
/// `IRQAckIRQ` (27 release, 31 debug).
pub const IRQ_ACK_IRQ: u64 = 27 + DEBUG_SHIFT;
/// `SchedContextConsumed` (37 release, 41 debug).
pub const SCHED_CONTEXT_CONSUMED: u64 = 37 + DEBUG_SHIFT;

/// MCS syscall numbers.
const SYS_CALL: i64 = -1;
const SYS_REPLY_RECV: i64 = -2;
const SYS_NB_SEND_RECV: i64 = -3;
const SYS_SEND: i64 = -5;
const SYS_RECV: i64 = -7;
/// `seL4_SysDebugPutChar` (debug kernels only).
const SYS_DEBUG_PUT_CHAR: i64 = -12;

fn mrs() -> [u64; 4] {
    let mut m = [0u64; 4];
    for (i, r) in m.iter_mut().enumerate() {
        *r = super::mr(i);
    }
    m
}

fn store_mrs(m: [u64; 4]) {
    for (i, r) in m.iter().enumerate() {
        super::set_mr(i, *r);
    }
}

/// `seL4_Call`: send `info` (MR0..3 from the IPC buffer) and wait for the reply.
pub(crate) fn sys_call(dest: u64, info: MessageInfo) -> MessageInfo {
    let [mut m0, mut m1, mut m2, mut m3] = mrs();
    let out_info: u64;
    // safety: the seL4 syscall ABI: the kernel reads and writes exactly the
    // registers named here and the IPC buffer this PD owns.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") dest => _,
            inout("x1") info.to_word() => out_info,
            inout("x2") m0, inout("x3") m1, inout("x4") m2, inout("x5") m3,
            in("x7") SYS_CALL,
            options(nostack)
        );
    }
    store_mrs([m0, m1, m2, m3]);
    MessageInfo::from_word(out_info)
}

/// `seL4_Send` (`seL4_Signal` on a notification): never blocks on a notification.
pub(crate) fn sys_send(dest: u64, info: MessageInfo) {
    let [m0, m1, m2, m3] = mrs();
    // safety: as in `sys_call`; Send returns nothing.
    unsafe {
        core::arch::asm!(
            "svc #0",
            in("x0") dest, in("x1") info.to_word(),
            in("x2") m0, in("x3") m1, in("x4") m2, in("x5") m3,
            in("x7") SYS_SEND,
            options(nostack)
        );
    }
}

/// MCS `seL4_Recv(src, &badge, reply)`.
pub(crate) fn sys_recv(src: u64, reply: u64) -> (u64, MessageInfo) {
    let (badge, info, m0, m1, m2, m3): (u64, u64, u64, u64, u64, u64);
    // safety: as in `sys_call`.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") src => badge,
            out("x1") info,
            out("x2") m0, out("x3") m1, out("x4") m2, out("x5") m3,
            in("x6") reply,
            in("x7") SYS_RECV,
            options(nostack)
        );
    }
    store_mrs([m0, m1, m2, m3]);
    (badge, MessageInfo::from_word(info))
}

/// MCS `seL4_ReplyRecv(src, info, &badge, reply)`.
pub(crate) fn sys_reply_recv(src: u64, info: MessageInfo, reply: u64) -> (u64, MessageInfo) {
    let [mut m0, mut m1, mut m2, mut m3] = mrs();
    let (badge, out_info): (u64, u64);
    // safety: as in `sys_call`.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") src => badge,
            inout("x1") info.to_word() => out_info,
            inout("x2") m0, inout("x3") m1, inout("x4") m2, inout("x5") m3,
            in("x6") reply,
            in("x7") SYS_REPLY_RECV,
            options(nostack)
        );
    }
    store_mrs([m0, m1, m2, m3]);
    (badge, MessageInfo::from_word(out_info))
}

/// MCS `seL4_NBSendRecv(dest, info, src, &badge, reply)`.
pub(crate) fn sys_nbsend_recv(dest: u64, info: MessageInfo, src: u64, reply: u64) -> (u64, MessageInfo) {
    let [mut m0, mut m1, mut m2, mut m3] = mrs();
    let (badge, out_info): (u64, u64);
    // safety: as in `sys_call`.
    unsafe {
        core::arch::asm!(
            "svc #0",
            inout("x0") src => badge,
            inout("x1") info.to_word() => out_info,
            inout("x2") m0, inout("x3") m1, inout("x4") m2, inout("x5") m3,
            in("x6") reply,
            in("x7") SYS_NB_SEND_RECV,
            in("x8") dest,
            options(nostack)
        );
    }
    store_mrs([m0, m1, m2, m3]);
    (badge, MessageInfo::from_word(out_info))
}

/// `seL4_DebugPutChar` (only called with feature `microkit-debug`: a release
/// kernel faults on it).
pub(crate) fn sys_debug_putchar(c: u8) {
    // safety: the debug syscall reads x0 and x7 only.
    unsafe {
        core::arch::asm!("svc #0", in("x0") u64::from(c), in("x7") SYS_DEBUG_PUT_CHAR, options(nostack));
    }
}
