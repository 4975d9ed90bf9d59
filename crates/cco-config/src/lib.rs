//! cco-config (work in progress)
