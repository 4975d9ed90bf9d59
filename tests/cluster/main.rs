//! Workers on `cco node` processes (issue 15): a head (`cco start` with a `cluster` config)
//! and nodes on 127.0.0.1, fake claude, real git. Every node is a child process killed by
//! its drop guard; nothing sleeps for a fixed time.

#[path = "../cli/harness.rs"]
mod harness;
mod loss;
mod nodes;
mod runs;
mod support;

use support as cluster;
