//! what `llmsh` and the daemon `llm-osd` share: input caps, the audit log,
//! the system link (hosted and qemu), the daemon and its client, receipts.

pub mod audit;
pub mod code;
pub mod common;
pub mod link;
pub mod paths;
pub mod osd;
pub mod qemu;
pub mod receipt;
