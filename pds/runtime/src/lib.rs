//! the llm-os protection-domain runtime: Microkit's PD contract in pure Rust.
//!
//! layered like rust-sel4's `sel4-microkit`: [`base`] holds the handles a PD
//! programs against ([`Channel`], [`Child`], [`MessageInfo`], [`Handler`]) and
//! the badge decoding of the Microkit event loop, with no platform code. two
//! backends implement the handles:
//!
//! - `sel4` (`target_os = "none"`, aarch64, MCS kernel): raw syscalls, the
//!   entry point, the symbols the Microkit tool patches (`microkit_name`,
//!   `microkit_passive`, `microkit_irqs`, `microkit_notifications`,
//!   `microkit_pps`, `microkit_ioports`), the event loop.
//! - `hosted` (feature `hosted`, std): every PD on its own thread, channels,
//!   PPCs, notifications, IRQs, regions and children wired from the same
//!   .system file by the `hosted-system` crate.
//!
//! all `unsafe` of llm-os outside device drivers lives in this crate, each
//! block with a `// safety:` comment.
#![cfg_attr(not(feature = "hosted"), no_std)]
#![cfg_attr(target_os = "none", no_main)]

pub mod base;
mod region;

#[cfg(target_os = "none")]
#[doc(hidden)]
pub mod sel4;

#[cfg(all(feature = "hosted", not(target_os = "none")))]
pub mod hosted;

#[cfg(not(any(target_os = "none", feature = "hosted")))]
compile_error!(
    "pd-runtime needs a backend: build for aarch64-unknown-none (seL4) or enable feature `hosted`"
);

#[cfg(target_os = "none")]
use sel4 as platform;

#[cfg(all(feature = "hosted", not(target_os = "none")))]
use hosted::platform;

pub use base::{
    decode_badge, dispatch, Channel, Child, Event, Handler, MessageInfo, Outcome, RuntimeError,
    SchedContext, Unhandled, MAX_CHANNELS, MSG_MAX_BYTES, MSG_MAX_WORDS,
};
pub use region::{MappedVar, Patched, Region, RegionError, RegionSpec, SetVar};

/// entry point of a PD image as laid out by `microkit.ld` (`_start` is the
/// first thing in `.text` at 0x200000); what `microkit_pd_restart` is given.
pub const DEFAULT_ENTRY: usize = 0x20_0000;

/// the PD's name as the system description gives it (`microkit_name`).
pub fn pd_name() -> &'static str {
    platform::pd_name()
}

/// a line on the debug console (`microkit_dbg_puts`); never on a protocol channel.
pub fn debug_println(s: &str) {
    platform::debug_put(s);
    platform::debug_put("\n");
}

/// read the message registers as bytes (little-endian words), like
/// sel4-microkit's `with_msg_bytes`.
pub fn with_msg_bytes<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    platform::with_msg_regs(|regs| {
        let mut bytes = [0u8; MSG_MAX_BYTES];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(regs.iter()) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        f(&bytes)
    })
}

/// write the message registers as bytes, like sel4-microkit's `with_msg_bytes_mut`.
pub fn with_msg_bytes_mut<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    let mut bytes = [0u8; MSG_MAX_BYTES];
    let r = f(&mut bytes);
    platform::with_msg_regs(|regs| {
        for (chunk, word) in bytes.chunks_exact(8).zip(regs.iter_mut()) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            *word = u64::from_le_bytes(w);
        }
    });
    r
}

/// message register `i` (`microkit_mr_get`); `None` past `seL4_MsgMaxLength`.
pub fn get_mr(i: usize) -> Option<u64> {
    platform::with_msg_regs(|regs| regs.get(i).copied())
}

/// set message register `i` (`microkit_mr_set`); an error past `seL4_MsgMaxLength`.
pub fn set_mr(i: usize, value: u64) -> Result<(), RuntimeError> {
    platform::with_msg_regs(|regs| match regs.get_mut(i) {
        Some(r) => {
            *r = value;
            Ok(())
        }
        None => Err(RuntimeError::MessageTooLong),
    })
}
