//! cco-actors (work in progress)
