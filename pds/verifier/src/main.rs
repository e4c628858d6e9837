//! the verifier PD's image: glue between the seL4 runtime and [`pd_verifier`],
//! and the two sources of this boot's epoch (the PL031 real-time clock and
//! the generic timer's counter).
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_interface::keys::{self, BLOB_LEN};
    use pd_runtime::Region;

    pd_interface::verifier_setvars!();
    // the image build writes this installation's keys over the marker
    pd_runtime::patched!(llm_os_keys, BLOB_LEN, keys::BLOB_EMPTY);

    /// PL031 data register: seconds since 1970 (qemu starts it at the host's clock).
    const RTCDR: usize = 0x00;

    /// this boot's epoch: the RTC's seconds in the high half, the generic
    /// counter's low 32 bits (62.5 MHz ticks since the cpu started: boots in
    /// the same second differ there) in the low half.
    fn epoch() -> u64 {
        // safety: `rtc_base` is the PL031's 4 KiB device mapping (uncached,
        // read-only) given by the .system file; RTCDR is a 32-bit register
        // at its start, read with one aligned 32-bit access as the device needs.
        let secs = unsafe { core::ptr::read_volatile((rtc_base.vaddr() + RTCDR) as *const u32) };
        let count: u64;
        // safety: CNTPCT_EL0 is readable at EL0 on this board
        // (KernelArmExportPCNTUser); reading it has no side effect.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) count, options(nomem, nostack))
        };
        (u64::from(secs) << 32) | (count & 0xffff_ffff)
    }

    fn init() -> Result<pd_verifier::Verifier, pd_verifier::VerifierError> {
        Ok(pd_verifier::Verifier::init(
            Region::from_setvar(&link_buf),
            keys::from_blob(&llm_os_keys.get()),
            epoch(),
        ))
    }

    pd_runtime::protection_domain!(pd_verifier::Verifier, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the verifier PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
