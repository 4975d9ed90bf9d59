//! cco-protocol (work in progress)
