//! Whether a folder ocisdk writes and later trusts (an install root, the cache folder and
//! the folders in it) can be trusted, checked as ssh and sudo check the paths they trust.
//! The SDK layer applies it to install roots and its cache (`sdk::trust`), the content layer
//! to the cache's folder of partial downloads (`content::staging::partial_dir`), which
//! never depends on `sdk`. Errors here name the folder; each caller says what it was for.
//!
//! The default install root sits in `/tmp`, where any local user may create `/tmp/oryx`
//! first. Whoever owns a folder on the way to an install, or may write one that is not
//! sticky, can put a folder holding the sentinel there, or rename a real install away and
//! put their own in its place: every build that then runs the SDK runs their code. So the
//! root, each folder above it, and the platform and version folders below it must be owned
//! by the effective user or by root, and none may be writable by group or others (group write
//! is accepted where the group is the owner's private group, see [`is_private_group`]); a sticky
//! folder (`/tmp`, root's 1777) is accepted above the root only: there only an entry's owner
//! may rename or remove it, and the one entry ocisdk goes through must be its user's or
//! root's. The root itself may not be sticky: others could create its platform folders
//! before ocisdk does.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::io::ErrorKind::NotFound;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use crate::error::Error;

/// Why a check did not pass.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// A folder or symlink on the way is one another user could change.
    Untrusted(Untrusted),
    /// The check itself failed (a folder could not be read).
    Io(Error),
}

/// A folder (or symlink) that failed the check, and what made it fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Untrusted {
    /// The folder or symlink.
    pub(crate) path: PathBuf,
    /// Its owner's uid.
    pub(crate) owner: u32,
    /// Its mode (permission, setuid, setgid and sticky bits).
    pub(crate) mode: u32,
    /// The effective uid of this process, whose folders are trusted besides root's.
    pub(crate) user: u32,
}

/// Why a folder is not trusted: its owner, else its mode, with `sticky`, why a sticky bit
/// does not help, when the folder has one.
pub(crate) fn untrusted_text(owner: u32, mode: u32, user: u32, sticky: &str) -> String {
    if owner != user && owner != 0 {
        format!("owned by uid {owner} (mode {mode:04o}), neither this user (uid {user}) nor root")
    } else {
        let who = if mode & 0o020 != 0 && mode & 0o002 != 0 {
            "its group and others"
        } else if mode & 0o020 != 0 {
            "its group"
        } else {
            "others"
        };
        let sticky = if mode & STICKY != 0 {
            format!(" ({sticky})")
        } else {
            String::new()
        };
        format!("owned by uid {owner} with mode {mode:04o}, writable by {who}{sticky}")
    }
}

/// What to do about a cache folder that cannot be trusted, said by every message about one.
pub(crate) const CACHE_REMEDY: &str = "use a cache folder of your own (OCISDK_CACHE_DIR), in a \
     folder only you and root may write, or name a folder you vouch for in OCISDK_SAFE_FOLDERS";

/// Why sticky is not enough for a cache folder.
pub(crate) const CACHE_STICKY: &str =
    "sticky is enough only for a folder above the cache folder: others could create its folders";

fn io(action: &'static str, path: &Path, e: std::io::Error) -> CheckError {
    CheckError::Io(Error::io(action, path, e))
}

/// How many symlinks a path may go through, as the kernel's `ELOOP` limit.
const MAX_SYMLINKS: usize = 40;

/// Mode bits that let group or others create, remove or rename entries of a folder.
const SHARED_WRITE: u32 = 0o022;
/// The sticky bit: in such a folder only an entry's owner (and the folder's) may remove or
/// rename it.
const STICKY: u32 = 0o1000;

/// What a folder is to the one checked (an install root, a cache folder), which decides
/// whether sticky is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// A folder above it: sticky is enough.
    Above,
    /// It, or a folder in it (a platform or version folder, a cache area): no one else may
    /// write it at all.
    Inside,
}

/// Checks the folders from `/` to `path`: each existing one as [`Place::Above`] but `path`
/// itself, checked as `last`. Symlinks on the way are followed, and each must be owned by
/// the effective user or root, like the folders. Returns the resolved path, or `None` when
/// some part of it does not exist (what exists is checked).
pub(crate) fn check_path(path: &Path, last: Place) -> Result<Option<PathBuf>, CheckError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| io("finding the current folder for", path, e))?
            .join(path)
    };
    let slash = PathBuf::from("/");
    if let Some(meta) = metadata(&slash)? {
        check_folder(&slash, &meta, Place::Above)?;
    }
    walk(slash, &absolute, Place::Above, last, &mut 0)
}

/// Checks the folders of `rest` (platform and version, a cache area) below `from`, the
/// resolved folder that [`check_path`] returned, each as [`Place::Inside`]. Returns the
/// resolved path, or `None` when some part of it does not exist.
pub(crate) fn check_below(from: &Path, rest: &Path) -> Result<Option<PathBuf>, CheckError> {
    walk(
        from.to_path_buf(),
        rest,
        Place::Inside,
        Place::Inside,
        &mut 0,
    )
}

/// Checks `rest` below `from`, a resolved folder already checked: its last component as
/// `last`, the others as `mid`.
fn walk(
    from: PathBuf,
    rest: &Path,
    mid: Place,
    last: Place,
    links: &mut usize,
) -> Result<Option<PathBuf>, CheckError> {
    let components: Vec<Component> = rest
        .components()
        .filter(|c| matches!(c, Component::Normal(_) | Component::ParentDir))
        .collect();
    let mut at = from;
    for (i, component) in components.iter().enumerate() {
        let place = if i + 1 == components.len() { last } else { mid };
        let Component::Normal(name) = component else {
            // `at` is resolved, so its parent is where `..` leads.
            at.pop();
            continue;
        };
        let next = at.join(name);
        let Some(meta) = metadata(&next)? else {
            return Ok(None);
        };
        if !meta.file_type().is_symlink() {
            check_folder(&next, &meta, place)?;
            at = next;
            continue;
        }
        // The link's folder is checked: only the link's owner (or root) can change it now.
        check_owner(&next, &meta)?;
        *links += 1;
        if *links > MAX_SYMLINKS {
            let loops = std::io::Error::other("too many levels of symbolic links");
            return Err(io("resolving", &next, loops));
        }
        let target = std::fs::read_link(&next).map_err(|e| io("reading", &next, e))?;
        let base = if target.is_absolute() {
            PathBuf::from("/")
        } else {
            at.clone()
        };
        // Where the link leads is checked like the path above the root, ending as `place`.
        match walk(base, &target, Place::Above, place, links)? {
            Some(resolved) => at = resolved,
            None => return Ok(None),
        }
    }
    Ok(Some(at))
}

/// Whether `path` is at or below one of the folders the user declared safe
/// ([`CatalogueSettings::safe_folders`](crate::sdk::CatalogueSettings::safe_folders),
/// [`ClientBuilder::safe_folders`](crate::ClientBuilder::safe_folders)), spelled as given or
/// with its symlinks resolved.
pub(crate) fn declared_safe(path: &Path, safe: &[PathBuf]) -> bool {
    if safe.is_empty() {
        return false;
    }
    let absolute = |p: &Path| match std::env::current_dir() {
        Ok(cwd) if p.is_relative() => cwd.join(p),
        _ => p.to_path_buf(),
    };
    let spellings = |p: &Path| {
        let given = absolute(p);
        let resolved = std::fs::canonicalize(&given).ok();
        std::iter::once(given).chain(resolved)
    };
    spellings(path).any(|path| {
        safe.iter()
            .flat_map(|folder| spellings(folder))
            .any(|folder| path.starts_with(folder))
    })
}

/// The `lstat` of `path`, `None` when it does not exist.
fn metadata(path: &Path) -> Result<Option<Metadata>, CheckError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => Ok(Some(meta)),
        Err(e) if e.kind() == NotFound => Ok(None),
        Err(e) => Err(io("checking", path, e)),
    }
}

/// Checks one folder in a checked folder (a cache area, a folder in it), with its
/// `lstat`ed metadata, as [`check_below`] checks each.
pub(crate) fn check_entry(path: &Path, meta: &Metadata) -> Result<(), CheckError> {
    check_folder(path, meta, Place::Inside)
}

fn check_folder(path: &Path, meta: &Metadata, place: Place) -> Result<(), CheckError> {
    check_owner(path, meta)?;
    let mode = meta.mode();
    let sticky_enough = place == Place::Above && mode & STICKY != 0;
    let private_group =
        mode & SHARED_WRITE == GROUP_WRITE && is_private_group(meta.gid(), meta.uid());
    if mode & SHARED_WRITE != 0 && !sticky_enough && !private_group {
        return Err(untrusted(path, meta));
    }
    Ok(())
}

/// Group write alone.
const GROUP_WRITE: u32 = 0o020;

/// Whether `gid` is the private group of the user `uid`: that user's primary group, named
/// as the user, listing no other member, and no other user's primary group. Debian and
/// Ubuntu give each user such a group and a umask of 002, so every folder a user makes is
/// group-writable; only they are in the group, and Debian's ssh accepts such folders for
/// the same reason, checking as this does.
fn is_private_group(gid: u32, uid: u32) -> bool {
    let Some(user) = user_entry(uid) else {
        return false;
    };
    let Some(group) = group_entry(gid) else {
        return false;
    };
    group_is_private(gid, uid, &user, &group, &users_in_primary_group(gid))
}

/// The decision of [`is_private_group`], given what the user and group databases say:
/// `user` is the owner's name and primary group, `group` the group's name and listed
/// members, and `primary_members` the uids of every user whose primary group `gid` is.
///
/// A group can have members it does not list: every user whose primary group it is. Those
/// could write the folder as well, so they must be the owner alone; and when the owner is
/// not among them, the user database could not be listed (LDAP without enumeration), so
/// no one can tell who else is in the group and it is not taken as private.
fn group_is_private(
    gid: u32,
    uid: u32,
    (user, primary): &(Vec<u8>, u32),
    (group, members): &(Vec<u8>, Vec<Vec<u8>>),
    primary_members: &[u32],
) -> bool {
    *primary == gid
        && group == user
        && members.iter().all(|member| member == user)
        && primary_members.contains(&uid)
        && primary_members.iter().all(|member| *member == uid)
}

/// The uids of the users whose primary group is `gid`, listing the user database once per
/// group for the process.
///
/// Why once: where the user database is a directory that can be enumerated (LDAP, NIS), a
/// listing walks every account on it, which takes seconds on a large one, and a command
/// checks the same folders again and again: the cache folder for each SDK an `sdk sync`
/// installs, every folder above it each time. The answer can only go stale by an account
/// made or changed meanwhile, as it could between the check and the use anyway.
fn users_in_primary_group(gid: u32) -> Vec<u32> {
    // The lock is also held through the listing: `getpwent` walks one listing per process,
    // and two checks on two threads would take turns through it and each see half.
    // (`getpwent_r` would still share the listing's position.)
    static LISTED: std::sync::Mutex<BTreeMap<u32, Vec<u32>>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut listed = LISTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(uids) = listed.get(&gid) {
        return uids.clone();
    }
    // Said, for whoever wonders why a command is slow on a large directory.
    tracing::debug!(
        gid,
        "listing the user database for the users whose primary group this is"
    );
    let mut uids = Vec::new();
    // SAFETY: the lock above makes this thread the only one in the listing; each entry is
    // read before the next call to getpwent, which may reuse its memory.
    unsafe {
        libc::setpwent();
        loop {
            let entry = libc::getpwent();
            if entry.is_null() {
                break;
            }
            if (*entry).pw_gid == gid {
                uids.push((*entry).pw_uid);
            }
        }
        libc::endpwent();
    }
    listed.insert(gid, uids.clone());
    uids
}

/// The name and primary group of the user `uid`, from the system's user database.
fn user_entry(uid: u32) -> Option<(Vec<u8>, u32)> {
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero bytes are a valid `passwd` (null pointers, zero ids).
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the strings it fills in point into `buf`,
    // which outlives their use below.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success `pw_name` is a NUL-terminated string in `buf`.
    let name = unsafe { std::ffi::CStr::from_ptr(entry.pw_name) };
    Some((name.to_bytes().to_vec(), entry.pw_gid))
}

/// The name and listed members of the group `gid`, from the system's group database.
fn group_entry(gid: u32) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: all-zero bytes are a valid `group` (null pointers, zero id).
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_entry`.
    let rc = unsafe { libc::getgrgid_r(gid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() {
        return None;
    }
    // SAFETY: on success `gr_name` is a NUL-terminated string in `buf`, and `gr_mem` a
    // null-terminated array of such strings.
    let (name, members) = unsafe {
        let mut members = Vec::new();
        let mut at = entry.gr_mem;
        while !at.is_null() && !(*at).is_null() {
            members.push(std::ffi::CStr::from_ptr(*at).to_bytes().to_vec());
            at = at.add(1);
        }
        (std::ffi::CStr::from_ptr(entry.gr_name), members)
    };
    Some((name.to_bytes().to_vec(), members))
}

fn check_owner(path: &Path, meta: &Metadata) -> Result<(), CheckError> {
    if meta.uid() == effective_uid() || meta.uid() == 0 {
        Ok(())
    } else {
        Err(untrusted(path, meta))
    }
}

fn untrusted(path: &Path, meta: &Metadata) -> CheckError {
    CheckError::Untrusted(Untrusted {
        path: path.to_path_buf(),
        owner: meta.uid(),
        mode: meta.mode() & 0o7777,
        user: effective_uid(),
    })
}

/// The user whose files ocisdk trusts besides root's.
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Creates `path` if it is missing, with its missing parents, none writable by group or
/// others whatever the umask, so that the folders ocisdk makes pass [`check_path`].
pub(crate) fn create_folders(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .map_err(|e| Error::io("creating", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn refused(result: Result<Option<PathBuf>, CheckError>) -> PathBuf {
        match result {
            Err(CheckError::Untrusted(untrusted)) => untrusted.path,
            other => panic!("expected Untrusted, got {other:?}"),
        }
    }

    /// Sticky is enough above the root, never for the root itself; group or other write
    /// without it is refused anywhere, also behind a symlink.
    #[test]
    fn shared_folders_are_refused_and_sticky_only_above_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        let root = shared.join("root");
        create_folders(&root).unwrap();
        let resolved = check_path(&root, Place::Inside).unwrap();
        assert_eq!(resolved, Some(std::fs::canonicalize(&root).unwrap()));

        set_mode(&shared, 0o1777);
        check_path(&root, Place::Inside).unwrap();
        set_mode(&shared, 0o777);
        assert_eq!(refused(check_path(&root, Place::Inside)), shared);
        set_mode(&shared, 0o755);

        set_mode(&root, 0o1777);
        assert_eq!(refused(check_path(&root, Place::Inside)), root);
        // Other write (group write depends on the group: see the test below).
        set_mode(&root, 0o757);
        assert_eq!(refused(check_path(&root, Place::Inside)), root);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&root, &link).unwrap();
        assert_eq!(refused(check_path(&link, Place::Inside)), root);
        set_mode(&root, 0o755);
        check_path(&link, Place::Inside).unwrap();

        // What does not exist yet is not refused: ocisdk will make it.
        let missing = root.join("python/3.11.0");
        assert_eq!(check_path(&missing, Place::Inside).unwrap(), None);
    }

    /// A group is private to its owner only when no other user has it as primary group,
    /// although no group lists such users as members, and only when the owner is seen
    /// among the users listed, so that a listing that is not complete cannot vouch for it.
    #[test]
    fn a_group_that_is_another_users_primary_group_is_not_private() {
        let (alice, bob) = (1000, 1001);
        let user = (b"alice".to_vec(), 1000);
        let group = (b"alice".to_vec(), Vec::new());
        assert!(group_is_private(1000, alice, &user, &group, &[alice]));
        assert!(!group_is_private(1000, alice, &user, &group, &[alice, bob]));
        assert!(!group_is_private(1000, alice, &user, &group, &[bob]));
        assert!(!group_is_private(1000, alice, &user, &group, &[]));
        // Listed members other than the owner, a group of another name, or a group that is
        // not the owner's primary one are not private either, as before.
        let listed = (b"alice".to_vec(), vec![b"alice".to_vec(), b"bob".to_vec()]);
        assert!(!group_is_private(1000, alice, &user, &listed, &[alice]));
        let staff = (b"staff".to_vec(), Vec::new());
        assert!(!group_is_private(1000, alice, &user, &staff, &[alice]));
        assert!(!group_is_private(50, alice, &user, &group, &[alice]));
    }

    /// Group write is accepted where the group is the owner's private group (root's group
    /// here: root's primary group, named as root, with no other member), and refused for a
    /// group others share, or with other write besides.
    #[test]
    #[allow(clippy::print_stderr)] // says why it did nothing, as the CLI tests do
    fn group_write_is_accepted_only_for_the_owners_private_group() {
        if effective_uid() != 0 {
            eprintln!("SKIPPED: only root can give a folder to another group");
            return;
        }
        let nogroup = 65534;
        assert!(
            is_private_group(0, 0),
            "root's group is private to root here"
        );
        assert!(!is_private_group(nogroup, 0));
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        create_folders(&root).unwrap();
        set_mode(&root, 0o775);

        std::os::unix::fs::chown(&root, Some(0), Some(0)).unwrap();
        check_path(&root, Place::Inside).unwrap();
        std::os::unix::fs::chown(&root, Some(0), Some(nogroup)).unwrap();
        assert_eq!(refused(check_path(&root, Place::Inside)), root);
        std::os::unix::fs::chown(&root, Some(0), Some(0)).unwrap();
        set_mode(&root, 0o777);
        assert_eq!(refused(check_path(&root, Place::Inside)), root);
    }
}
