//! cco-git (work in progress)
