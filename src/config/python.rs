//! Settings of the `python` processor (the users' own per-frame code) and of the embedded
//! Python interpreter (`[python]`).

use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::bounds::within;

/// Largest `args` table, as JSON.
pub const MAX_ARGS_BYTES: usize = 16 * 1024;

/// The embedded Python interpreter, shared by every `python` processor (one interpreter per
/// process: a change here takes effect at the next start).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonSection {
    /// A virtual environment whose packages the processors import (its `site-packages` comes
    /// first on `sys.path`); relative to the config file. The machine's own packages (Debian's
    /// `python3-numpy`) are used when unset.
    #[serde(default)]
    pub venv: Option<PathBuf>,
}

/// Settings of the `python` processor: a function of the user's, called with each frame as
/// numpy arrays over framegate's own frame memory (no copy) and its metadata. It runs on its own
/// thread: a function slower than `budget_ms` no longer holds the frames back (see
/// docs/python.md).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonConfig {
    /// The Python file, relative to the config file. It is imported when the config is loaded
    /// (an error there is a config error naming the file and line), and again at a reload when
    /// its content changed. Only the config file may name one: API changes may not add or alter
    /// a `python` processor.
    pub file: PathBuf,
    /// The function called for every frame: `function(frame, meta)`, or
    /// `function(frame, meta, args)` when `args` is set.
    #[serde(default = "default_function")]
    pub function: String,
    /// Settings handed to the function as a dict (its third argument); at most 16 KiB.
    #[serde(default)]
    pub args: Option<serde_json::Map<String, serde_json::Value>>,
    /// Whether the function may draw: the planes are then writable (the frame is copied first
    /// only when another part of framegate still reads it) and the stream encodes its own video.
    /// `false` maps them read-only: never a copy, and a camera's video may pass through.
    #[serde(default = "default_draws")]
    pub draws: bool,
    /// How long a frame may wait for the function (milliseconds, 1 to 1000). A call that takes
    /// longer lets its frame go undrawn (the previous one is shown again in its place), and the
    /// function then gets frames at its own pace, read in the background, until its calls are
    /// quick again.
    #[serde(default = "default_budget_ms")]
    pub budget_ms: u32,
    /// Seconds after which a call that has not returned is reported as hung (1 to 3600).
    #[serde(default = "default_hang_s")]
    pub hang_s: f64,
}

fn default_function() -> String {
    "process".into()
}

fn default_draws() -> bool {
    true
}

fn default_budget_ms() -> u32 {
    20
}

fn default_hang_s() -> f64 {
    10.0
}

impl PythonConfig {
    /// Checks the settings beyond their types.
    pub fn validate(&self) -> Result<(), String> {
        let f = &self.function;
        if f.is_empty()
            || f.len() > 64
            || f.starts_with(|c: char| c.is_ascii_digit())
            || !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!(
                "python.function `{}` is not a Python function name",
                f.escape_debug()
            ));
        }
        if self.file.as_os_str().is_empty()
            || self.file.extension().is_none_or(|e| e != "py")
            || self.file.as_os_str().len() > 1024
        {
            return Err(format!(
                "python.file `{}` must name a .py file",
                self.file.display()
            ));
        }
        if !(1..=1000).contains(&self.budget_ms) {
            return Err(format!(
                "python.budget_ms = {} is out of range (1 to 1000)",
                self.budget_ms
            ));
        }
        within("python.hang_s", self.hang_s, 1.0, 3600.0)?;
        if let Some(args) = &self.args {
            let size = serde_json::to_string(args).map_or(usize::MAX, |s| s.len());
            if size > MAX_ARGS_BYTES {
                return Err(format!(
                    "python.args is {size} bytes as JSON, more than {MAX_ARGS_BYTES}"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(file: &str, function: &str) -> PythonConfig {
        PythonConfig {
            file: file.into(),
            function: function.into(),
            args: None,
            draws: true,
            budget_ms: 20,
            hang_s: 10.0,
        }
    }

    #[test]
    fn names_and_numbers_are_checked() {
        assert!(config("a.py", "process").validate().is_ok());
        assert!(config("a.py", "9lives").validate().is_err());
        assert!(config("a.py", "os.system").validate().is_err());
        assert!(config("a.py", "").validate().is_err());
        assert!(config("a.txt", "process").validate().is_err());
        assert!(config("", "process").validate().is_err());
        let mut c = config("a.py", "process");
        c.budget_ms = 0;
        assert!(c.validate().unwrap_err().contains("budget_ms"));
        c.budget_ms = 20;
        c.hang_s = f64::NAN;
        assert!(c.validate().unwrap_err().contains("hang_s"));
        c.hang_s = 10.0;
        let mut big = serde_json::Map::new();
        big.insert("x".into(), "a".repeat(MAX_ARGS_BYTES).into());
        c.args = Some(big);
        assert!(c.validate().unwrap_err().contains("args"));
    }
}
