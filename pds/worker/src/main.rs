//! the worker PD's image: glue between the seL4 runtime and [`pd_worker`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_runtime::Region;

    pd_interface::worker_setvars!();

    fn init() -> Result<pd_worker::Worker, pd_worker::WorkerError> {
        pd_worker::Worker::init(
            pd_runtime::pd_name(),
            Region::from_setvar(&pool_vaddr),
            Region::from_setvar(&ledger_vaddr),
            Region::from_setvar(&status_vaddr),
        )
    }

    pd_runtime::protection_domain!(pd_worker::Worker, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the worker PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
