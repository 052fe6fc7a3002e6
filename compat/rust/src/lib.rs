//! Support for the rdkafka compatibility tests (`tests/rdkafka_client.rs`): a runnel
//! broker process per test, and the records every test produces and verifies.
//!
//! This crate knows nothing about runnel's internals: it starts the binary named by
//! `RUNNEL_BIN` and talks to it only through a third-party client, as a user would.

pub mod broker;
pub mod records;
