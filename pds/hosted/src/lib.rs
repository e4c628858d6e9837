//! the hosted llm-os: every PD's handler on a host thread, wired from
//! system/llm-os.system.
pub mod sdf;
