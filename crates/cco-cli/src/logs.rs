//! `cco logs <agent> [-f]`: one agent's lines of the newest run's `combined.log`.
//!
//! The newest run folder under the config's `logDirectory` is the running or the last run.
//! Lines are selected by their agent column (see `cco::log`). `-f` keeps polling
//! the file for growth (a few times a second, no busy loop) until the run has finished (its
//! journal records an end), so `-f` on a finished run prints the log and exits.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use cco::log as runlog;

use crate::cli::LogsArgs;

use crate::commands::EXIT_FAILED;

const POLL: Duration = Duration::from_millis(200);

pub async fn run(args: LogsArgs) -> ExitCode {
    let config = match crate::commands::load_config(&args.config, &Default::default()) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let log_directory = &config.config.log_directory;
    let Some(run_dir) = crate::commands::latest_run_dir(log_directory) else {
        eprintln!("cco: no run found in {}", log_directory.display());
        return ExitCode::from(EXIT_FAILED);
    };
    let path = run_dir.join(runlog::FILE_NAME);
    let mut file = match std::fs::File::open(&path) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("cco: cannot read {}: {error}", path.display());
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let mut text = String::new();
    if let Err(error) = file.read_to_string(&mut text) {
        eprintln!("cco: cannot read {}: {error}", path.display());
        return ExitCode::from(EXIT_FAILED);
    }
    // Only whole lines: a line being written now is read again when it is complete.
    let complete = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let seen = agents_in(&text[..complete]);
    if !seen.contains(args.agent.as_str()) {
        eprintln!(
            "cco: no lines of agent `{}` in {}; agents seen: {}",
            args.agent,
            path.display(),
            if seen.is_empty() {
                "none yet".to_string()
            } else {
                seen.into_iter().collect::<Vec<_>>().join(", ")
            }
        );
        return ExitCode::from(EXIT_FAILED);
    }
    let mut out = std::io::stdout().lock();
    if print_agent_lines(&mut out, &text[..complete], &args.agent).is_err() {
        return ExitCode::SUCCESS; // stdout closed (`| head`)
    }
    drop(out);
    if !args.follow || run_finished(&run_dir) {
        return ExitCode::SUCCESS;
    }
    match follow(&run_dir, complete as u64, &args.agent).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("cco: {}: {error}", path.display());
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Agent ids of the lines of a combined log.
fn agents_in(text: &str) -> BTreeSet<&str> {
    text.lines()
        .filter_map(runlog::parse_line)
        .map(|l| l.agent)
        .collect()
}

/// Writes the lines of `agent`; an error means stdout went away.
fn print_agent_lines(out: &mut impl Write, text: &str, agent: &str) -> std::io::Result<()> {
    for line in text.lines() {
        if runlog::parse_line(line).is_some_and(|l| l.agent == agent) {
            // A log an older cco wrote may hold an agent's escape sequences.
            writeln!(out, "{}", cco::printable(line))?;
        }
    }
    out.flush()
}

/// True when the run of `run_dir` has ended (its journal says why).
fn run_finished(run_dir: &Path) -> bool {
    cco::Orchestrator::read_run(run_dir).is_ok_and(|run| run.finished)
}

/// Polls the run's log for growth from `offset` and prints the agent's new lines, until the
/// run has finished (then what is left is printed), stdout goes away or the process is
/// interrupted.
async fn follow(run_dir: &Path, mut offset: u64, agent: &str) -> std::io::Result<()> {
    let path = &run_dir.join(runlog::FILE_NAME);
    let mut pending = Vec::new();
    loop {
        // Checked a poll period before reading, so the last read sees everything the run
        // wrote, its closing lines included.
        let finished = run_finished(run_dir);
        tokio::time::sleep(POLL).await;
        let len = std::fs::metadata(path)?.len();
        if len < offset {
            // Truncated or replaced: start over.
            offset = 0;
            pending.clear();
        }
        if len == offset {
            if finished {
                return Ok(());
            }
            continue;
        }
        let mut file = std::fs::File::open(path)?;
        file.seek(SeekFrom::Start(offset))?;
        let mut chunk = Vec::new();
        Read::take(&mut file, len - offset).read_to_end(&mut chunk)?;
        offset += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
            if finished {
                return Ok(());
            }
            continue;
        };
        let complete: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&complete);
        let mut out = std::io::stdout().lock();
        if print_agent_lines(&mut out, &text, agent).is_err() || finished {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2025-01-31T12:00:00.000Z cco phase: planning\n\
                       2025-01-31T12:00:01.000Z worker-1 tool: Bash\n\
                       2025-01-31T12:00:01.500Z worker-10 tool: Edit\n\
                       2025-01-31T12:00:02.000Z worker-1 > done\n";

    #[test]
    fn only_the_agents_lines_are_printed_and_ids_match_exactly() {
        let mut out = Vec::new();
        print_agent_lines(&mut out, LOG, "worker-1").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "2025-01-31T12:00:01.000Z worker-1 tool: Bash\n2025-01-31T12:00:02.000Z worker-1 > done\n");
    }

    #[test]
    fn the_agents_seen_are_listed_once_each() {
        assert_eq!(
            agents_in(LOG).into_iter().collect::<Vec<_>>(),
            vec!["cco", "worker-1", "worker-10"]
        );
    }
}
