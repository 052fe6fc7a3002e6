//! Record-batch v2 view, validation and compression codecs.
