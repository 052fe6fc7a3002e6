//! The admin client (being written).
