//! the firmware PD's image: glue between the seL4 runtime and [`pd_firmware`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_firmware::{Firmware, FirmwareError, QEMU_VIRT_AARCH64};

    fn init() -> Result<Firmware, FirmwareError> {
        Ok(Firmware::init(QEMU_VIRT_AARCH64))
    }

    pd_runtime::protection_domain!(Firmware, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the firmware PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
