//! the worker PD's image: glue between the seL4 runtime and [`pd_worker`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_interface::{layout::POOL_PAGES, PAGE_SIZE};
    use pd_runtime::Region;

    pd_runtime::setvar!(pool_vaddr);
    pd_runtime::setvar!(ledger_vaddr);
    pd_runtime::setvar!(status_vaddr);

    fn init() -> Result<pd_worker::Worker, pd_worker::WorkerError> {
        pd_worker::Worker::init(
            pd_runtime::pd_name(),
            Region::from_setvar(&pool_vaddr, POOL_PAGES * PAGE_SIZE, true),
            Region::from_setvar(&ledger_vaddr, PAGE_SIZE, false),
            Region::from_setvar(&status_vaddr, PAGE_SIZE, true),
        )
    }

    pd_runtime::protection_domain!(pd_worker::Worker, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the worker PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
