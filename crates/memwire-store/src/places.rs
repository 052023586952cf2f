//! Where a store server keeps its data when nobody says: `$XDG_STATE_HOME/memwire`, else
//! `~/.local/state/memwire` (the XDG base-directory default), else `/tmp/memwire-state-$UID`.

use std::path::PathBuf;

/// Environment variable that overrides the data directory for the `memwire` command.
pub const DATA_DIR_ENV: &str = "MEMWIRE_DATA_DIR";

/// The default data directory: `MEMWIRE_DATA_DIR`, else `$XDG_STATE_HOME/memwire`, else
/// `$HOME/.local/state/memwire`, else `/tmp/memwire-state-<uid>`. Relative values of the
/// variables are ignored, as the XDG specification says.
#[must_use]
pub fn default_data_dir() -> PathBuf {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if let Some(dir) = absolute(DATA_DIR_ENV) {
        return dir;
    }
    if let Some(state) = absolute("XDG_STATE_HOME") {
        return state.join("memwire");
    }
    if let Some(home) = absolute("HOME") {
        return home.join(".local/state/memwire");
    }
    PathBuf::from(format!(
        "/tmp/memwire-state-{}",
        rustix::process::getuid().as_raw()
    ))
}
