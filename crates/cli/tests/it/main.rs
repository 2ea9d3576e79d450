//! Multi-process tests of the real `nova` binary.
