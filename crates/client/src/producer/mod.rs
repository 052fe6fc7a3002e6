//! The producer (being written).
