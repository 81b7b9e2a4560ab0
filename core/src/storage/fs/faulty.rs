//! [`FaultyFs`]: the real file system with faults on demand, a crash at
//! any step and a power cut.
//!
//! A **crash** ([`FaultyFs::crash_after`]) stops the process at a step: the
//! first `n` file-system operations that change something happen, and every
//! one after fails without doing anything, as if the process had died there.
//!
//! A **power cut** ([`FaultyFs::power_cut`]) then also loses what the disk
//! was never asked to keep: the bytes written to a file since its last
//! fsync, and every directory change (a file or directory created, renamed
//! or removed) since the last fsync of the directory holding it, newest
//! first. That is the worst a POSIX file system may do; a real one usually
//! keeps more. So a store that is correct after any crash point followed by
//! a power cut is correct whatever the disk kept.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::{io, Debug, File, Fs, Path, PathBuf, RealFs};

/// A directory change not yet made durable by an fsync of its directory.
#[derive(Debug)]
enum Undo {
    /// A file or directory was created.
    Created(PathBuf),
    /// `from` was renamed to `to`, replacing `replaced` (its bytes).
    Renamed {
        from: PathBuf,
        to: PathBuf,
        replaced: Option<Vec<u8>>,
    },
    /// A file holding these bytes was removed.
    Removed(PathBuf, Vec<u8>),
}

impl Undo {
    /// The directory whose fsync makes the change durable.
    fn dir(&self) -> Option<&Path> {
        match self {
            Undo::Created(p) | Undo::Removed(p, _) => p.parent(),
            Undo::Renamed { to, .. } => to.parent(),
        }
    }
}

#[derive(Debug, Default)]
struct Journal {
    undo: Vec<Undo>,
    /// Open files by inode: their path.
    paths: HashMap<u64, PathBuf>,
    /// Files written since their last fsync, by inode: the length they had
    /// at that fsync.
    synced_len: HashMap<u64, u64>,
}

/// The real file system, with faults on demand: fail the next fsync, or
/// let `n` more writes through and tear the one after (half of it
/// reaches the file, then it fails), as a full disk would; crash after
/// `n` steps; cut the power. Faults stay armed until they fire or
/// [`FaultyFs::heal`] is called.
#[derive(Debug)]
pub struct FaultyFs {
    fail_sync: AtomicBool,
    writes_left: AtomicU64,
    fail_rename: AtomicBool,
    /// Steps left before the crash (`u64::MAX`: none armed).
    steps_left: AtomicU64,
    /// Steps taken so far.
    steps: AtomicU64,
    journal: Mutex<Journal>,
}

impl Default for FaultyFs {
    fn default() -> Self {
        Self::new()
    }
}

fn injected(what: &str) -> io::Error {
    io::Error::other(format!("injected {what} failure"))
}

fn ino(file: &File) -> Option<u64> {
    file.metadata().ok().map(|m| m.ino())
}

impl FaultyFs {
    /// No faults armed yet.
    pub fn new() -> Self {
        Self {
            fail_sync: AtomicBool::new(false),
            writes_left: AtomicU64::new(u64::MAX),
            fail_rename: AtomicBool::new(false),
            steps_left: AtomicU64::new(u64::MAX),
            steps: AtomicU64::new(0),
            journal: Mutex::new(Journal::default()),
        }
    }

    /// The next fsync (of a file or a directory) fails.
    pub fn fail_next_sync(&self) {
        self.fail_sync.store(true, Ordering::SeqCst);
    }

    /// `n` more writes succeed; the one after writes half its bytes and
    /// fails, and so does every write after it.
    pub fn fail_after_writes(&self, n: u64) {
        self.writes_left.store(n, Ordering::SeqCst);
    }

    /// The next rename fails.
    pub fn fail_next_rename(&self) {
        self.fail_rename.store(true, Ordering::SeqCst);
    }

    /// `n` more steps (operations that change something: create, write,
    /// fsync, rename, remove, truncate) happen; every one after fails and
    /// does nothing, as if the process died.
    pub fn crash_after(&self, n: u64) {
        self.steps_left.store(n, Ordering::SeqCst);
    }

    /// How many steps were taken so far (to learn how many crash points an
    /// operation has).
    pub fn steps(&self) -> u64 {
        self.steps.load(Ordering::SeqCst)
    }

    /// Disarms every fault (a crash included).
    pub fn heal(&self) {
        self.fail_sync.store(false, Ordering::SeqCst);
        self.writes_left.store(u64::MAX, Ordering::SeqCst);
        self.fail_rename.store(false, Ordering::SeqCst);
        self.steps_left.store(u64::MAX, Ordering::SeqCst);
    }

    /// Cuts the power: loses every write and directory change that no fsync
    /// covered (see the module docs), then heals.
    pub fn power_cut(&self) {
        self.cut(None);
    }

    /// A power cut after which the disk wrote back the unsynced bytes of
    /// each file out of order: those in `hole` (offsets counted from the
    /// file's last fsync) never reached it and read as zeroes, the ones
    /// after did. Directory changes are lost as in [`FaultyFs::power_cut`].
    pub fn power_cut_with_hole(&self, hole: std::ops::Range<u64>) {
        self.cut(Some(hole));
    }

    fn cut(&self, hole: Option<std::ops::Range<u64>>) {
        use std::io::{Seek as _, SeekFrom, Write as _};
        let mut j = self.lock();
        for (ino, len) in std::mem::take(&mut j.synced_len) {
            let Some(path) = j.paths.get(&ino) else {
                continue;
            };
            let same = std::fs::metadata(path).is_ok_and(|m| m.ino() == ino);
            let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(path) else {
                continue;
            };
            match (&hole, same) {
                (_, false) => {}
                (None, true) => {
                    let _ = f.set_len(len);
                }
                (Some(h), true) => {
                    let end = f.metadata().map_or(0, |m| m.len());
                    let (from, to) = ((len + h.start).min(end), (len + h.end).min(end));
                    let zeroes = vec![0u8; usize::try_from(to - from).unwrap_or(0)];
                    let _ = f
                        .seek(SeekFrom::Start(from))
                        .and_then(|_| f.write_all(&zeroes));
                }
            }
        }
        while let Some(u) = j.undo.pop() {
            match u {
                Undo::Created(p) => {
                    let _ = std::fs::remove_file(&p).or_else(|_| std::fs::remove_dir_all(&p));
                }
                Undo::Renamed { from, to, replaced } => {
                    let _ = std::fs::rename(&to, &from);
                    if let Some(bytes) = replaced {
                        let _ = std::fs::write(&to, bytes);
                    }
                }
                Undo::Removed(p, bytes) => {
                    let _ = std::fs::write(&p, bytes);
                }
            }
        }
        j.paths.clear();
        drop(j);
        self.heal();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Journal> {
        // A test that panicked while holding it leaves plain data behind.
        self.journal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a step; an error if the crash has happened.
    fn step(&self) -> io::Result<()> {
        let left = self.steps_left.load(Ordering::SeqCst);
        if left == 0 {
            return Err(io::Error::other("injected crash: the process is gone"));
        }
        if left != u64::MAX {
            self.steps_left.store(left - 1, Ordering::SeqCst);
        }
        self.steps.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn note_write(&self, file: &File, len_before: u64) {
        if let Some(ino) = ino(file) {
            self.lock().synced_len.entry(ino).or_insert(len_before);
        }
    }
}

impl Fs for FaultyFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.step()?;
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
            .map(Path::to_path_buf)
            .collect();
        RealFs.create_dir_all(dir)?;
        let mut j = self.lock();
        j.undo.extend(missing.into_iter().rev().map(Undo::Created));
        Ok(())
    }

    fn open_append(&self, path: &Path) -> io::Result<File> {
        self.step()?;
        let existed = path.exists();
        let file = RealFs.open_append(path)?;
        let mut j = self.lock();
        if !existed {
            j.undo.push(Undo::Created(path.to_owned()));
        }
        if let Some(ino) = ino(&file) {
            j.paths.insert(ino, path.to_owned());
        }
        Ok(file)
    }

    fn write(&self, file: &mut File, bytes: &[u8]) -> io::Result<()> {
        self.step()?;
        let before = file.metadata().map(|m| m.len()).unwrap_or(0);
        let left = self.writes_left.load(Ordering::SeqCst);
        if left == 0 {
            let half = bytes.get(..bytes.len() / 2).unwrap_or_default();
            self.note_write(file, before);
            RealFs.write(file, half)?;
            return Err(injected("write"));
        }
        if left != u64::MAX {
            self.writes_left.store(left - 1, Ordering::SeqCst);
        }
        self.note_write(file, before);
        RealFs.write(file, bytes)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        RealFs.read(path)
    }

    fn sync(&self, file: &File) -> io::Result<()> {
        self.step()?;
        if self.fail_sync.swap(false, Ordering::SeqCst) {
            return Err(injected("fsync"));
        }
        RealFs.sync(file)?;
        if let Some(ino) = ino(file) {
            self.lock().synced_len.remove(&ino);
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.step()?;
        if self.fail_sync.swap(false, Ordering::SeqCst) {
            return Err(injected("directory fsync"));
        }
        RealFs.sync_dir(dir)?;
        self.lock().undo.retain(|u| u.dir() != Some(dir));
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.step()?;
        if self.fail_rename.swap(false, Ordering::SeqCst) {
            return Err(injected("rename"));
        }
        let replaced = std::fs::read(to).ok();
        RealFs.rename(from, to)?;
        let mut j = self.lock();
        for p in j.paths.values_mut() {
            if p == from {
                *p = to.to_owned();
            }
        }
        j.undo.push(Undo::Renamed {
            from: from.to_owned(),
            to: to.to_owned(),
            replaced,
        });
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        self.step()?;
        let bytes = std::fs::read(path).ok();
        RealFs.remove(path)?;
        if let Some(bytes) = bytes {
            self.lock().undo.push(Undo::Removed(path.to_owned(), bytes));
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        RealFs.list(dir)
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.step()?;
        RealFs.truncate(path, len)?;
        if let Ok(m) = std::fs::metadata(path) {
            self.lock().synced_len.remove(&m.ino());
        }
        Ok(())
    }
}
