//! Compression codecs for record batches.
