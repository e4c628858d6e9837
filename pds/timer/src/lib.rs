//! placeholder.
#![no_std]
