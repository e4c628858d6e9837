//! the process PD's image: glue between the seL4 runtime and [`pd_process`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_interface::PAGE_SIZE;
    use pd_runtime::Region;

    pd_runtime::setvar!(status0_vaddr);
    pd_runtime::setvar!(status1_vaddr);
    pd_runtime::setvar!(status2_vaddr);
    pd_runtime::setvar!(status3_vaddr);

    fn init() -> Result<pd_process::Process, pd_process::ProcessError> {
        pd_process::Process::init([
            Region::from_setvar(&status0_vaddr, PAGE_SIZE, false),
            Region::from_setvar(&status1_vaddr, PAGE_SIZE, false),
            Region::from_setvar(&status2_vaddr, PAGE_SIZE, false),
            Region::from_setvar(&status3_vaddr, PAGE_SIZE, false),
        ])
    }

    pd_runtime::protection_domain!(pd_process::Process, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the process PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
