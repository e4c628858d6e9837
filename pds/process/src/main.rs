//! the process PD's image: glue between the seL4 runtime and [`pd_process`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_runtime::Region;

    pd_interface::process_setvars!();

    fn init() -> Result<pd_process::Process, pd_process::ProcessError> {
        pd_process::Process::init(WORKER_REGIONS.map(Region::from_setvar))
    }

    pd_runtime::protection_domain!(pd_process::Process, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the process PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
