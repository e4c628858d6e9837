//! the memory PD's image: glue between the seL4 runtime and [`pd_memory`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_runtime::Region;

    pd_interface::memory_setvars!();

    fn init() -> Result<pd_memory::Memory, pd_memory::MemoryError> {
        pd_memory::Memory::init(
            Region::from_setvar(&pool_vaddr),
            Region::from_setvar(&ledger_vaddr),
        )
    }

    pd_runtime::protection_domain!(pd_memory::Memory, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the memory PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
