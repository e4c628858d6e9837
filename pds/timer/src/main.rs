//! the timer PD's image: glue between the seL4 runtime and [`pd_timer`].
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod image {
    use pd_timer::{generic_timer::GenericTimer, Timer, TimerError};

    fn init() -> Result<Timer<GenericTimer>, TimerError> {
        Ok(Timer::init(GenericTimer::new()))
    }

    pd_runtime::protection_domain!(Timer<GenericTimer>, init);
}

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the timer PD runs under seL4 (aarch64-unknown-none) or in the hosted system (`llmsh boot`)");
}
