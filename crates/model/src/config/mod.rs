//! Configuration definitions (filled in by the config work).
