//! the link PD's image: glue between the seL4 runtime and [`pd_link`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_link::{pl011::Pl011, Link, LinkPdError};
    use pd_runtime::Region;

    pd_interface::link_setvars!();

    fn init() -> Result<Link<Pl011>, LinkPdError> {
        Ok(Link::init(
            Pl011::new(uart_base.vaddr()),
            Region::from_setvar(&link_buf),
        ))
    }

    pd_runtime::protection_domain!(Link<Pl011>, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "the link PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)"
    );
}
