//! Atomic saves: the bytes go to a temporary file beside the target, then a rename replaces the
//! target, so an interrupted save never destroys a good file. A symbolic link is written
//! through (its target is replaced, the link stays), and temporary files that a killed save
//! left behind are removed by the next save of the same target. Only regular files are
//! replaced (never a device, a FIFO or a directory), and the temporary file is created
//! exclusively under an unpredictable name, so a link planted there cannot redirect the save.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How many links a path may go through before it is refused (as the OS's `ELOOP`).
const MAX_LINKS: usize = 40;

fn save_error(path: &Path, detail: impl Into<String>) -> Error {
    Error::File {
        path: path.display().to_string(),
        detail: detail.into(),
    }
}

/// The file a save to `path` replaces: `path` itself, or, where it is a symbolic link (to a
/// link...), the file it finally points to, which need not exist yet.
fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)
                    .map_err(|e| save_error(path, format!("cannot read the link: {e}")))?;
                current = match current.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(save_error(
        path,
        format!("more than {MAX_LINKS} symbolic links to follow"),
    ))
}

/// The prefix of the temporary files of saves to `file_name`: `.{file_name}.tmp-`, followed by
/// the saving process's id and a number.
fn temp_prefix(file_name: &str) -> String {
    format!(".{file_name}.tmp-")
}

/// Whether a process of this id is running. Where that cannot be known (no `/proc`), a
/// process counts as running, and only temporary files a day old are taken for stale.
fn process_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new(&format!("/proc/{pid}")).exists())
}

/// Removes the temporary files that saves to `file_name` in `dir` left behind when their
/// process was killed: those whose process no longer runs (or, where that is unknown, older
/// than a day). A save in progress in a live process keeps its file.
fn remove_stale_temps(dir: &Path, file_name: &str) {
    let prefix = temp_prefix(file_name);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        let Some((pid, number)) = rest.split_once('-') else {
            continue;
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !digits(number) || pid == std::process::id() {
            continue;
        }
        let stale = match process_alive(pid) {
            Some(alive) => !alive,
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 24 * 3600),
        };
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if stale && is_file {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A number no other process can guess: the standard library's per-process random hash keys
/// mixed with the time and a counter.
fn unpredictable() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(crate::tensor::next_id());
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.finish()
}

/// Writes bytes to `path` through a temporary file in the same folder and a rename, so that an
/// interrupted save leaves any previous file intact. A symbolic link at `path` is written
/// through to its target; the replaced file's permissions are kept; stale temporary files of
/// earlier, killed saves to the same target are removed first. Anything at the target but a
/// regular file (a device, a FIFO, a socket, a directory) is refused and left as it is.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.file()
        .write_all(bytes)
        .map_err(|e| save_error(path, format!("cannot write: {e}")))?;
    file.commit()
}

/// A file written under a temporary name in its folder and renamed onto its path by
/// `commit`, as `write_atomically` does, for writers that stream: dropped without `commit`
/// (an error, a panic, a cancelled task), it removes its temporary file and leaves the path as
/// it was.
pub struct AtomicFile {
    path: PathBuf,
    target: PathBuf,
    tmp: PathBuf,
    file: Option<std::fs::File>,
    permissions: Option<std::fs::Permissions>,
}

impl AtomicFile {
    /// Creates the temporary file for `path` (refusing a target that is not a regular file).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let target = resolve_links(path)?;
        if let Ok(m) = std::fs::metadata(&target)
            && !m.file_type().is_file()
        {
            return Err(save_error(
                path,
                format!(
                    "{} is not a regular file (a device, FIFO, socket or directory): a save \
                     replaces only regular files",
                    target.display()
                ),
            ));
        }
        let dir = target
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let file_name = target
            .file_name()
            .ok_or_else(|| save_error(path, "the path names no file"))?
            .to_string_lossy()
            .into_owned();
        remove_stale_temps(dir, &file_name);
        let permissions = std::fs::metadata(&target).ok().map(|m| m.permissions());
        let tmp = dir.join(format!(
            "{}{}-{}",
            temp_prefix(&file_name),
            std::process::id(),
            unpredictable()
        ));
        // Exclusive creation (O_EXCL): fails on anything already there, a planted symbolic
        // link included, instead of following it.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| save_error(path, format!("cannot write: {e}")))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            target,
            tmp,
            file: Some(file),
            permissions,
        })
    }

    /// The temporary file, to write to.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.file
            .as_mut()
            .expect("an AtomicFile holds its file until commit")
    }

    /// Flushes the file to disk and renames it onto the path.
    pub fn commit(mut self) -> Result<()> {
        let result = (|| -> std::io::Result<()> {
            if let Some(f) = self.file.take() {
                f.sync_all()?;
                if let Some(p) = self.permissions.take() {
                    f.set_permissions(p)?;
                }
            }
            std::fs::rename(&self.tmp, &self.target)
        })();
        result.map_err(|e| save_error(&self.path, format!("cannot write: {e}")))
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // Only a file this save created is removed: `create_new` never opened anything else.
        if self.file.take().is_some() || self.tmp.exists() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stale_temps_of_the_same_target_go() {
        let dir = std::env::temp_dir().join(format!("lamina-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A process that has exited: its id names no running process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = std::process::id();
        let files = [
            (format!(".m.lamina.tmp-{dead}-7"), false),
            (format!(".m.lamina.tmp-{live}-7"), true),
            (format!(".other.lamina.tmp-{dead}-7"), true),
            (format!(".m.lamina.tmp-{dead}-x"), true),
            ("m.lamina.tmp".to_string(), true),
        ];
        for (f, _) in &files {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        write_atomically(&dir.join("m.lamina"), b"model").unwrap();
        for (f, kept) in &files {
            if process_alive(dead) == Some(false) {
                assert_eq!(dir.join(f).exists(), *kept, "{f}");
            }
        }
        assert_eq!(std::fs::read(dir.join("m.lamina")).unwrap(), b"model");
        std::fs::remove_dir_all(dir).ok();
    }
}
