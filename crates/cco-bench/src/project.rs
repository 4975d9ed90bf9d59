//! A throwaway project driven by fake-claude: a source repository, a config directory whose
//! `./claude` is a wrapper that runs fake-claude with this project's script.

use std::path::{Path, PathBuf};

use cco_config::LoadedConfig;
use serde_json::{json, Value};

/// Finds the fake-claude binary: `--fake-claude`, else builds it (release) into the target
/// directory this binary was built in.
pub fn fake_claude(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("{} is not a file", path.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // <target>/<profile>/cco-bench
    let profile_dir = exe.parent().ok_or("no parent of current_exe")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| profile_dir.parent().map(Path::to_path_buf))
        .ok_or("cannot find the target directory")?;
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    cco_testkit::build_fake_claude(&target, release)
}

pub struct Project {
    /// Removed on drop (unless `CCO_BENCH_KEEP` is set).
    _dir: tempfile::TempDir,
    pub config_dir: PathBuf,
}

impl Project {
    /// `config` overrides the defaults below; `script` is the fake-claude script.
    pub fn new(fake_claude: &Path, config: Value, script: &Value) -> std::io::Result<Project> {
        let mut dir = tempfile::Builder::new().prefix("cco-bench-").tempdir()?;
        // `CCO_BENCH_KEEP=1`: the project (source, workspace, run folder with its logs and
        // events) stays for a look after the run.
        if std::env::var_os("CCO_BENCH_KEEP").is_some_and(|v| !v.is_empty() && v != "0") {
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let source = cco_testkit::init_repo(&dir.path().join("source"));
        let config_dir = dir.path().join("config");
        std::fs::create_dir_all(&config_dir)?;
        let script_path = cco_testkit::write_script(&config_dir, script);
        cco_testkit::fake_claude_wrapper(
            &config_dir,
            fake_claude,
            &script_path,
            &config_dir.join("fake-state"),
        )?;
        let mut full = json!({
            "repositoryUrl": source.display().to_string(),
            "workerCount": 1,
            "claudeBinary": "./claude",
            "projectDirection": "Benchmark project.",
            "pollIntervalMs": 50,
            "restartBackoffMs": 0,
            "killGraceMs": 500,
            "taskTimeoutMs": 600000,
            "idleTimeoutMs": 300000,
            "maxRunDurationMinutes": 60,
            "push": false,
            // Planners answer with result texts: the scheduling runs measure cco, not parsing.
            "structuredOutput": "off"
        });
        for (k, v) in config.as_object().expect("config object") {
            full[k] = v.clone();
        }
        std::fs::write(
            config_dir.join("orchestrator.json"),
            serde_json::to_vec_pretty(&full)?,
        )?;
        Ok(Project {
            _dir: dir,
            config_dir,
        })
    }

    /// The project's folder (removed on drop).
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    pub fn load(&self) -> Result<LoadedConfig, String> {
        cco_config::load(&self.config_dir).map_err(|e| e.to_string())
    }

    pub fn workspace_repo(&self) -> PathBuf {
        self.config_dir.join("workspace").join("repo")
    }
}
