//! Files that hold secrets (the database: TOTP secrets, trails, phone numbers; key files):
//! owner-only from the first write. Folders Doorstep creates are `0700`, the SQLite database
//! and its `-wal`/`-shm` and every key file `0600`.

use std::path::Path;

/// Creates `dir` (and missing parents) owner-only. An existing folder is left as it is: it is
/// the operator's (it may be `.`).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes sure the SQLite database at `path` is owner-only before SQLite opens it: created
/// empty with `0600` when absent (SQLite then gives its `-wal` and `-shm` the same mode), and
/// an existing database and its companions tightened to `0600`.
pub fn prepare_private_database(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    drop(options.open(path)?);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    Ok(())
}
