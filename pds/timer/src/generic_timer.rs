//! the ARM generic timer's EL1 physical timer, driven from EL0.
//!
//! the qemu_virt_aarch64 Microkit kernel is built with
//! `KernelArmExportPTMRUser` (and `KernelArmExportPCNTUser`), which sets
//! CNTKCTL_EL1 so EL0 may read CNTPCT_EL0 and program CNTP_CVAL_EL0 /
//! CNTP_CTL_EL0. the timer's PPI is INTID 30 (non-secure physical timer).

use crate::Clock;

/// the generic timer as a [`Clock`].
pub struct GenericTimer {
    freq: u64,
}

impl GenericTimer {
    /// read the counter frequency (CNTFRQ_EL0) and disable the timer until
    /// the first deadline.
    pub fn new() -> Self {
        let freq: u64;
        // safety: CNTFRQ_EL0 is readable at EL0; the read has no side effects.
        unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq, options(nomem, nostack)) };
        // safety: the kernel config exports the physical timer to EL0;
        // writing 0 to CNTP_CTL_EL0 disables it.
        unsafe { core::arch::asm!("msr cntp_ctl_el0, {}", in(reg) 0u64, options(nomem, nostack)) };
        Self { freq: freq.max(1) }
    }

    fn counter(&self) -> u64 {
        let c: u64;
        // safety: CNTPCT_EL0 is readable at EL0 (KernelArmExportPCNTUser);
        // the isb orders the read after earlier instructions.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntpct_el0", out(reg) c, options(nomem, nostack))
        };
        c
    }
}

impl Default for GenericTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for GenericTimer {
    fn now_us(&self) -> u64 {
        ((u128::from(self.counter()) * 1_000_000) / u128::from(self.freq)) as u64
    }

    fn set_deadline(&mut self, deadline_us: u64) {
        let cval = ((u128::from(deadline_us) * u128::from(self.freq)) / 1_000_000) as u64;
        // safety: CNTP_CVAL_EL0 and CNTP_CTL_EL0 are writable at EL0
        // (KernelArmExportPTMRUser); ctl = 1 enables the timer, unmasked. a
        // deadline in the past fires at once, which is what a late tick wants.
        unsafe {
            core::arch::asm!(
                "msr cntp_cval_el0, {cval}",
                "msr cntp_ctl_el0, {one}",
                "isb",
                cval = in(reg) cval,
                one = in(reg) 1u64,
                options(nomem, nostack)
            )
        };
    }
}
