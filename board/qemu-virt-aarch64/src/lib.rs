//! the qemu `virt` board (aarch64, cortex-a53) as llm-os runs on it with the
//! the Microkit SDK's `qemu_virt_aarch64` board: the memory map and devices the
//! .system file and the PDs rely on, and (feature `host`) how the image is
//! built and how qemu is started.
//!
//! the constants correspond to qemu 7.2's `hw/arm/virt.c` and to the SDK's
//! `board/qemu_virt_aarch64/*/platform_gen.json`; `system/llm-os.system`
//! repeats the device addresses and IRQs (the Microkit tool reads only XML),
//! and a test below checks that the two agree.
#![cfg_attr(not(feature = "host"), no_std)]

/// the Microkit board name (`--board`).
pub const MICROKIT_BOARD: &str = "qemu_virt_aarch64";

/// the rust target the PDs are built for.
pub const PD_TARGET: &str = "aarch64-unknown-none";

/// guest RAM that qemu is given (`-m size=2G`), at [`RAM_BASE`].
pub const RAM_SIZE: u64 = 2 << 30;
/// where qemu virt puts RAM.
pub const RAM_BASE: u64 = 0x4000_0000;
/// the part of RAM the SDK's kernel hands out as untyped memory
/// (platform_gen.json `memory`): 0x6000_0000..0xc000_0000.
pub const KERNEL_RAM: (u64, u64) = (0x6000_0000, 0xc000_0000);
/// the Microkit loader's link address: qemu's `-device loader,addr=`.
pub const LOADER_ADDR: u64 = 0x7000_0000;

/// the PL011 UART: the link PD's device, also the debug kernel's console.
pub const UART_PADDR: u64 = 0x0900_0000;
/// one page of PL011 registers.
pub const UART_SIZE: u64 = 0x1000;
/// the PL011's interrupt: SPI 1 = INTID 33.
pub const UART_IRQ: u32 = 33;

/// the PL031 real-time clock: the verifier PD reads it (read-only) for each
/// boot's epoch. qemu starts it at the host's clock (`-rtc base=utc`).
pub const RTC_PADDR: u64 = 0x0901_0000;
/// one page of PL031 registers.
pub const RTC_SIZE: u64 = 0x1000;

/// the ARM generic timer's non-secure EL1 physical timer PPI (INTID 30);
/// the kernel exports CNTP_* to EL0 on this board (`KernelArmExportPTMRUser`).
pub const TIMER_PPI: u32 = 30;
/// the device interrupts of this board a PD may claim, by device name: the
/// manifest names each `<irq>` after its device (`uart` → `UART_IRQ`).
pub const IRQS: &[(&str, u32)] = &[("uart", UART_IRQ), ("timer", TIMER_PPI)];

/// CNTFRQ_EL0 on qemu virt (62.5 MHz), measured; the timer PD reads the
/// register rather than trusting this.
pub const TIMER_HZ: u64 = 62_500_000;

/// GIC v2 distributor and cpu interface: the kernel's, never mapped by a PD.
pub const GIC_DIST: u64 = 0x0800_0000;
/// see [`GIC_DIST`].
pub const GIC_CPU: u64 = 0x0801_0000;

/// cpus qemu is started with (the SDK's non-smp configs run one core).
pub const CPUS: u32 = 1;

#[cfg(feature = "host")]
pub mod image;
#[cfg(feature = "host")]
pub mod qemu;

#[cfg(all(test, feature = "host"))]
mod tests {
    use super::*;

    fn system() -> String {
        std::fs::read_to_string(image::repo_root().join("system/llm-os.system")).unwrap_or_default()
    }

    #[test]
    fn system_file_maps_the_uart_and_irqs_of_this_board() {
        let s = system();
        assert!(s.contains(&format!("phys_addr=\"{UART_PADDR:#x}\"")), "uart phys_addr");
        assert!(s.contains(&format!("size=\"{UART_SIZE:#x}\"")), "uart size");
        assert!(s.contains(&format!("irq=\"{UART_IRQ}\"")), "uart irq");
        assert!(s.contains(&format!("irq=\"{TIMER_PPI}\"")), "timer ppi");
        assert!(
            s.contains(&format!("name=\"rtc\" size=\"{RTC_SIZE:#x}\" phys_addr=\"{RTC_PADDR:#x}\"")),
            "rtc region"
        );
    }
}
