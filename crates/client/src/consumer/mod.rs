//! The consumer (being written).

pub mod member;
