//! Output files that cannot hurt: `sagitta analyze` writes every file to a temporary name in
//! its folder and renames it into place ([`AtomicFile`]), so a killed run or a full disk never
//! leaves a cut file; it never writes through a symbolic link ([`refuse_symlink`]); it never
//! writes over one of its own inputs ([`InputIdentities`]); and one process at a time writes to
//! an output folder or CSV file ([`OutputLock`]).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Where a path leads: its canonical form (symbolic links resolved), or for a file that does
/// not exist yet its canonical folder and its name. `None` when neither can be resolved.
pub fn identity(path: &Path) -> Option<PathBuf> {
    if let Ok(canonical) = std::fs::canonicalize(path) {
        return Some(canonical);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    Some(std::fs::canonicalize(parent).ok()?.join(name))
}

/// The files a run reads, by canonical path and (on Unix) by device and inode, so that an
/// output reaching one through a symbolic or hard link is recognised.
#[derive(Debug, Default)]
pub struct InputIdentities {
    paths: HashSet<PathBuf>,
    inodes: HashSet<(u64, u64)>,
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|metadata| (metadata.dev(), metadata.ino()))
}

#[cfg(not(unix))]
fn inode(_path: &Path) -> Option<(u64, u64)> {
    None
}

impl InputIdentities {
    pub fn new<'a>(inputs: impl IntoIterator<Item = &'a Path>) -> Self {
        let mut identities = Self::default();
        for path in inputs {
            identities.add(path);
        }
        identities
    }

    pub fn add(&mut self, path: &Path) {
        if let Some(identity) = identity(path) {
            self.paths.insert(identity);
        }
        if let Some(inode) = inode(path) {
            self.inodes.insert(inode);
        }
    }

    /// Whether writing `path` would replace one of the inputs.
    pub fn contains(&self, path: &Path) -> bool {
        identity(path).is_some_and(|identity| self.paths.contains(&identity))
            || inode(path).is_some_and(|inode| self.inodes.contains(&inode))
    }
}

fn refusal(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, reason.into())
}

/// Fails when `path` is a symbolic link (outputs are never written through one: a link planted
/// in an output folder would let a run overwrite any file its user can write).
pub fn refuse_symlink(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => Err(refusal(
            "it is a symbolic link, and sagitta never writes through a link: remove it",
        )),
        _ => Ok(()),
    }
}

/// Whether a write failed for lack of space (a full disk, a quota, the file size limit): the
/// next files would fail the same way, so the run stops.
pub fn is_disk_full(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

static TEMPORARY_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file written under a temporary name in its target's folder (`.NAME.PID.N.sagitta-tmp`,
/// hidden, created exclusively, so never through a link) and renamed over the target by
/// [`AtomicFile::commit`]: the target is the old file or the whole new one, never a part.
/// Dropped without a commit (an error, a stopped run), the temporary file is removed.
pub struct AtomicFile {
    target: PathBuf,
    temporary: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> io::Result<Self> {
        refuse_symlink(target)?;
        let name = target
            .file_name()
            .ok_or_else(|| refusal("not a file name"))?
            .to_string_lossy()
            .into_owned();
        let folder = match target.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let temporary = folder.join(format!(
            ".{name}.{}.{}.sagitta-tmp",
            std::process::id(),
            TEMPORARY_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        Ok(Self {
            target: target.to_path_buf(),
            temporary,
            file: Some(file),
        })
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the data to the disk (a full disk shows here at the latest) and renames the
    /// file into place.
    pub fn commit(mut self) -> io::Result<()> {
        let file = self.file.take().expect("an uncommitted file");
        let result = file
            .sync_all()
            .and_then(|()| refuse_symlink(&self.target))
            .and_then(|()| std::fs::rename(&self.temporary, &self.target));
        drop(file);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temporary);
        }
        result
    }
}

impl Write for AtomicFile {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.file
            .as_mut()
            .expect("an uncommitted file")
            .write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("an uncommitted file").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Writes `bytes` to `path` through an [`AtomicFile`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)?;
    file.commit()
}

/// The lock of an output folder: `DIR/.sagitta.lock`.
pub fn folder_lock_path(folder: &Path) -> PathBuf {
    folder.join(".sagitta.lock")
}

/// The lock of an output file: `.NAME.lock` beside it.
pub fn file_lock_path(file: &Path) -> PathBuf {
    let name = file.file_name().map_or_else(
        || "output".into(),
        |name| name.to_string_lossy().into_owned(),
    );
    file.with_file_name(format!(".{name}.lock"))
}

/// Whether process `pid` runs.
fn alive(pid: u32) -> bool {
    if pid == std::process::id() {
        // Our own pid in a lock we did not take: left by an earlier process that had it.
        return false;
    }
    if cfg!(target_os = "linux") && Path::new("/proc/self").exists() {
        return Path::new("/proc").join(pid.to_string()).exists();
    }
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .map_or(true, |status| status.success())
}

/// A lock file holding the pid of the process that writes an output; removed when dropped. A
/// lock whose process no longer runs (a killed run) is stale and taken over.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
}

impl OutputLock {
    /// Takes the lock `path` for writing `what` (named in the refusal).
    pub fn acquire(path: &Path, what: &Path) -> Result<Self, String> {
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    let written = file.write_all(format!("{}\n", std::process::id()).as_bytes());
                    if let Err(error) = written.and_then(|()| file.sync_all()) {
                        let _ = std::fs::remove_file(path);
                        return Err(format!(
                            "{}: cannot write the lock: {error}",
                            path.display()
                        ));
                    }
                    return Ok(Self {
                        path: path.to_path_buf(),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    match Self::holder(path) {
                        Some(pid) if alive(pid) => {
                            return Err(format!(
                                "{}: locked by another sagitta (pid {pid}) writing to {}; wait \
                                 for it to finish or choose another output (remove the lock \
                                 only if no sagitta runs)",
                                path.display(),
                                what.display()
                            ))
                        }
                        Some(_) => {
                            // Stale: its process is gone.
                            let _ = std::fs::remove_file(path);
                        }
                        None => {
                            return Err(format!(
                                "{}: a lock that holds no pid (not written by sagitta, or cut \
                                 short); remove it if no sagitta writes to {}",
                                path.display(),
                                what.display()
                            ))
                        }
                    }
                }
                Err(error) => {
                    return Err(format!(
                        "{}: cannot create the lock: {error}",
                        path.display()
                    ))
                }
            }
        }
        Err(format!(
            "{}: could not take the lock (another process keeps taking it)",
            path.display()
        ))
    }

    /// The pid in a lock file; `None` when it is not a small regular file holding one (a
    /// lock being written this instant gets a moment to be).
    fn holder(path: &Path) -> Option<u32> {
        for attempt in 0..20 {
            let metadata = std::fs::symlink_metadata(path).ok()?;
            if !metadata.file_type().is_file() || metadata.len() > 64 {
                return None;
            }
            if let Ok(pid) = std::fs::read_to_string(path).ok()?.trim().parse() {
                return Some(pid);
            }
            if attempt < 19 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        None
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_files_replace_the_target_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x.json");
        std::fs::write(&target, "old").unwrap();
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        file.commit().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        // Dropped without a commit: nothing changes, nothing is left.
        let mut file = AtomicFile::create(&target).unwrap();
        file.write_all(b"cut").unwrap();
        drop(file);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim.txt");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("x.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let error = write_atomic(&link, b"overwritten").unwrap_err();
        assert!(error.to_string().contains("symbolic link"), "{error}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn a_full_device_is_recognised() {
        let Ok(mut full) = OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("no /dev/full here: skipped");
            return;
        };
        let error = full.write_all(&[0; 4096]).and_then(|()| full.flush());
        assert!(is_disk_full(&error.unwrap_err()));
    }

    #[test]
    fn locks_refuse_a_live_holder_and_take_over_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = folder_lock_path(dir.path());
        let lock = OutputLock::acquire(&path, dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().trim(),
            std::process::id().to_string()
        );
        drop(lock);
        assert!(!path.exists());
        // pid 1 always runs.
        if Path::new("/proc/1").exists() {
            std::fs::write(&path, "1\n").unwrap();
            let refused = OutputLock::acquire(&path, dir.path()).unwrap_err();
            assert!(refused.contains(".sagitta.lock") && refused.contains("pid 1"));
        }
        // A pid beyond the kernel's range runs nowhere.
        std::fs::write(&path, "4294967294\n").unwrap();
        let taken = OutputLock::acquire(&path, dir.path()).unwrap();
        assert_eq!(taken.path(), path);
    }

    #[test]
    fn identities_see_through_links() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("x.png");
        std::fs::write(&input, "png").unwrap();
        let inputs = InputIdentities::new([input.as_path()]);
        assert!(inputs.contains(&dir.path().join("./x.png")));
        assert!(!inputs.contains(&dir.path().join("y.png")));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(&input, dir.path().join("link.png")).unwrap();
            assert!(inputs.contains(&dir.path().join("link.png")));
            std::fs::hard_link(&input, dir.path().join("hard.png")).unwrap();
            assert!(inputs.contains(&dir.path().join("hard.png")));
        }
    }
}
