//! what a person sees: plans and receipts in words, progress on long waits,
//! the live view (`llmsh top`), the interactive shell, who is asking.

pub mod progress;
pub mod shell;
pub mod top;
pub mod words;
