//! The per-install device key (ECDSA P-256): created once, kept where only
//! this installation can read it, used to sign evidence.
//!
//! [`DeviceKeyStore`] and [`DeviceSigner`] are the seam for hardware-backed
//! stores (Android Keystore, the Secure Enclave), whose private keys never
//! leave the hardware: they sign, they do not export. [`FileKeyStore`] is the
//! Linux store: a PKCS#8 file with mode 0600 in the app's data dir.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use genuine_protocol::device::{DeviceKey, DevicePublicKey};
use ring::rand::{SecureRandom, SystemRandom};

/// File name of the device key in the data dir.
pub const KEY_FILE: &str = "genuine-device-key.p8";

/// Why the device key could not be loaded, created or used. Paths are
/// named; key material never is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyStoreError {
    /// The data dir could not be created.
    #[error("cannot create the data dir {path}: {kind}")]
    CreateDir {
        /// The dir.
        path: PathBuf,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// The key file exists but could not be read.
    #[error("cannot read the device key file {path}: {kind}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// The key file could not be written.
    #[error("cannot write the device key file {path}: {kind}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        kind: std::io::ErrorKind,
    },
    /// Other users may read or write the key file: it is not used.
    #[error(
        "the device key file {path} has mode {mode:04o}; others may read it, so it is refused (chmod 600 it, or delete it to make a new device id)"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key path is not a regular file (a symlink, a dir, …).
    #[error("the device key path {path} is not a regular file")]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The key file belongs to another user: it is not used (that user
    /// could have written a key of their choosing, or read this one).
    #[error(
        "the device key file {path} belongs to uid {uid}, not to this process's user; it is refused"
    )]
    WrongOwner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        uid: u32,
    },
    /// The file does not hold a P-256 PKCS#8 key.
    #[error(
        "the device key file {path} does not hold a P-256 key (delete it to make a new device id)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
    },
    /// A new key could not be generated (the system random source failed).
    #[error("generating a device key failed")]
    Generate,
    /// Signing failed.
    #[error("signing with the device key failed")]
    Sign,
    /// This store does not work on this platform.
    #[error("this device key store is not available on this platform")]
    Unsupported,
}

/// A device key that signs: its public half, and ES256 signatures.
pub trait DeviceSigner: Send + Sync {
    /// The public key (its device id is derived from it).
    fn public_key(&self) -> &DevicePublicKey;
    /// An ES256 signature (fixed-size `r || s`, 64 bytes) of `message`.
    ///
    /// # Errors
    /// [`KeyStoreError::Sign`] when signing fails.
    fn sign_es256(&self, message: &[u8]) -> Result<Vec<u8>, KeyStoreError>;
}

/// Where an installation's device key lives.
pub trait DeviceKeyStore: Send + Sync {
    /// The installation's key, created on first use and the same afterwards.
    ///
    /// # Errors
    /// [`KeyStoreError`] when it can be neither loaded nor created.
    fn load_or_create(&self) -> Result<Arc<dyn DeviceSigner>, KeyStoreError>;
}

/// A key held in process memory (ring), e.g. loaded from a [`FileKeyStore`].
pub struct SoftwareKey {
    key: DeviceKey,
    rng: SystemRandom,
}

impl SoftwareKey {
    /// A new random key, with its PKCS#8 document (for storing it).
    ///
    /// # Errors
    /// [`KeyStoreError::Generate`] if the random source fails.
    pub fn generate() -> Result<(Self, Vec<u8>), KeyStoreError> {
        let rng = SystemRandom::new();
        let (key, pkcs8) = DeviceKey::generate(&rng).map_err(|_| KeyStoreError::Generate)?;
        Ok((Self { key, rng }, pkcs8))
    }
}

impl fmt::Debug for SoftwareKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private key.
        f.debug_struct("SoftwareKey")
            .field("device_id", &self.key.public_key().device_id())
            .finish_non_exhaustive()
    }
}

impl DeviceSigner for SoftwareKey {
    fn public_key(&self) -> &DevicePublicKey {
        self.key.public_key()
    }

    fn sign_es256(&self, message: &[u8]) -> Result<Vec<u8>, KeyStoreError> {
        self.key
            .sign(&self.rng, message)
            .map_err(|_| KeyStoreError::Sign)
    }
}

/// The Linux store: `DATA_DIR/genuine-device-key.p8`, PKCS#8 DER, mode 0600
/// in a dir of mode 0700 (when the SDK creates it). A key file that group or
/// others may read or write is refused, never silently fixed: it may already
/// have been copied; so is one that another user owns, and a symlink. The
/// checks are made on the opened file (`O_NOFOLLOW`, then `fstat`), so the
/// path cannot be swapped between the check and the read.
#[derive(Debug, Clone)]
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    /// A store in `data_dir`.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: data_dir.into(),
        }
    }

    /// The key file's path.
    #[must_use]
    pub fn path(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }
}

#[cfg(unix)]
impl DeviceKeyStore for FileKeyStore {
    fn load_or_create(&self) -> Result<Arc<dyn DeviceSigner>, KeyStoreError> {
        let path = self.path();
        match load(&path)? {
            Some(key) => Ok(Arc::new(key)),
            None => Ok(Arc::new(create(&self.dir, &path)?)),
        }
    }
}

#[cfg(not(unix))]
impl DeviceKeyStore for FileKeyStore {
    fn load_or_create(&self) -> Result<Arc<dyn DeviceSigner>, KeyStoreError> {
        Err(KeyStoreError::Unsupported)
    }
}

/// Largest key file read (a P-256 PKCS#8 document is about 140 bytes).
#[cfg(unix)]
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Overwrites key bytes that are no longer needed (best effort: the
/// allocator may have copied them when a buffer grew).
#[cfg(unix)]
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(&bytes);
}

/// Loads the key at `path`; `None` if there is no file.
///
/// The file is opened without following a symlink (and without blocking on
/// a FIFO), and every check is made on the opened file: it is a regular
/// file, no one but its owner may read or write it, and its owner is this
/// process's effective user.
#[cfg(unix)]
fn load(path: &Path) -> Result<Option<SoftwareKey>, KeyStoreError> {
    use std::io::Read;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let read_err = |e: std::io::Error| KeyStoreError::Read {
        path: path.into(),
        kind: e.kind(),
    };
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // O_NOFOLLOW on a symlink: ELOOP (Linux, macOS), EMLINK (FreeBSD).
        Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::EMLINK)) => {
            return Err(KeyStoreError::NotAFile { path: path.into() });
        }
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.file_type().is_file() {
        return Err(KeyStoreError::NotAFile { path: path.into() });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyStoreError::Exposed {
            path: path.into(),
            mode,
        });
    }
    if meta.uid() != crate::sys::effective_uid() {
        return Err(KeyStoreError::WrongOwner {
            path: path.into(),
            uid: meta.uid(),
        });
    }
    if meta.len() > MAX_KEY_FILE {
        return Err(KeyStoreError::Corrupt { path: path.into() });
    }
    let mut pkcs8 = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    let read = (&mut file)
        .take(MAX_KEY_FILE + 1)
        .read_to_end(&mut pkcs8)
        .map_err(read_err);
    let rng = SystemRandom::new();
    let key = read.and_then(|_| {
        DeviceKey::from_pkcs8(&pkcs8, &rng)
            .map_err(|_| KeyStoreError::Corrupt { path: path.into() })
    });
    wipe(&mut pkcs8);
    Ok(Some(SoftwareKey { key: key?, rng }))
}

/// Creates a new key at `path`, atomically: written to a private temporary
/// file, synced, then hard-linked into place (which fails if another process
/// got there first; then its key is loaded instead).
#[cfg(unix)]
fn create(dir: &Path, path: &Path) -> Result<SoftwareKey, KeyStoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| KeyStoreError::CreateDir {
            path: dir.into(),
            kind: e.kind(),
        })?;
    let (key, mut pkcs8) = SoftwareKey::generate()?;
    let mut suffix = [0u8; 8];
    SystemRandom::new()
        .fill(&mut suffix)
        .map_err(|_| KeyStoreError::Generate)?;
    let tmp = dir.join(format!(
        ".{KEY_FILE}.{}",
        data_encoding::HEXLOWER.encode(&suffix)
    ));
    let write_err = |e: std::io::Error| KeyStoreError::Write {
        path: path.into(),
        kind: e.kind(),
    };
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&pkcs8)?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    wipe(&mut pkcs8);
    let _ = std::fs::remove_file(&tmp);
    match result {
        Ok(()) => {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            load(path)?.ok_or(KeyStoreError::Write {
                path: path.into(),
                kind: e.kind(),
            })
        }
        Err(e) => Err(write_err(e)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn created_once_with_mode_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("app"));
        let a = store.load_or_create().unwrap();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = std::fs::metadata(dir.path().join("app"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dmode & 0o777, 0o700);
        let b = store.load_or_create().unwrap();
        assert_eq!(a.public_key(), b.public_key());
        let sig = a.sign_es256(b"m").unwrap();
        assert!(b.public_key().verify_es256(b"m", &sig));
        // Only the key file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("app"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE)]);
    }

    #[test]
    fn readable_by_others_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path());
        store.load_or_create().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            let err = store.load_or_create().err().unwrap();
            assert!(matches!(err, KeyStoreError::Exposed { mode: m, .. } if m == mode));
            let after = std::fs::metadata(store.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(after & 0o777, mode, "not silently changed");
        }
    }

    #[test]
    fn corrupt_symlink_and_concurrent_creation() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path());
        std::fs::write(store.path(), b"not a key").unwrap();
        std::fs::set_permissions(store.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = store.load_or_create().err().unwrap();
        assert!(matches!(err, KeyStoreError::Corrupt { .. }));
        assert!(!err.to_string().contains("not a key"));
        std::fs::remove_file(store.path()).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", store.path()).unwrap();
        assert!(matches!(
            store.load_or_create().err().unwrap(),
            KeyStoreError::NotAFile { .. }
        ));
        std::fs::remove_file(store.path()).unwrap();

        // Eight threads racing to create the key all end up with one key.
        let ids: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| store.load_or_create().unwrap().public_key().device_id()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    }

    #[test]
    fn another_users_file_is_refused() {
        if crate::sys::effective_uid() != 0 {
            // Only root can give a file away; CI runs these tests as root.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            eprintln!("SKIPPED: another_users_file_is_refused needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path());
        store.load_or_create().unwrap();
        std::os::unix::fs::chown(store.path(), Some(4242), None).unwrap();
        let err = store.load_or_create().err().unwrap();
        assert!(
            matches!(err, KeyStoreError::WrongOwner { uid: 4242, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path());
        let made = std::process::Command::new("mkfifo")
            .arg(store.path())
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            store.load_or_create().err().unwrap(),
            KeyStoreError::NotAFile { .. }
        ));
    }

    #[test]
    fn a_path_swapped_for_a_symlink_is_never_followed() {
        // Another key, readable by everyone, that a symlink points to; and
        // the store's own private key. A thread keeps swapping the key path
        // between a private file (a hard link to the own key) and a symlink
        // to the exposed one. Loading must give the own key or an error,
        // never the exposed key (checking the path, then reading it, would:
        // the check sees the private file, the read follows the symlink).
        let dir = tempfile::tempdir().unwrap();
        let exposed_dir = dir.path().join("exposed");
        let exposed = FileKeyStore::new(&exposed_dir);
        let exposed_id = exposed.load_or_create().unwrap().public_key().device_id();
        std::fs::set_permissions(exposed.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        let own_dir = dir.path().join("own");
        let own = FileKeyStore::new(&own_dir);
        let own_id = own.load_or_create().unwrap().public_key().device_id();
        let own_file = dir.path().join("own.p8");
        std::fs::hard_link(own.path(), &own_file).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (mut loaded_own, mut refused, mut followed) = (0u32, 0u32, 0u32);
        std::thread::scope(|s| {
            s.spawn(|| {
                let (a, b) = (own_dir.join("a"), own_dir.join("b"));
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = std::fs::remove_file(&a);
                    let _ = std::fs::remove_file(&b);
                    std::fs::hard_link(&own_file, &a).unwrap();
                    std::fs::rename(&a, own.path()).unwrap();
                    std::os::unix::fs::symlink(exposed.path(), &b).unwrap();
                    std::fs::rename(&b, own.path()).unwrap();
                }
            });
            // Counted, not asserted here: a panic in this loop would leave
            // the swapping thread running and the scope waiting for it.
            // At least 3000 loads, and until both outcomes were seen (a busy
            // machine may run the swapping thread late), for at most 20 s.
            let started = std::time::Instant::now();
            let mut n = 0;
            while (n < 3000 || loaded_own == 0 || refused == 0)
                && started.elapsed() < std::time::Duration::from_secs(20)
            {
                n += 1;
                match load(&own.path()) {
                    Ok(Some(k)) if k.public_key().device_id() == own_id => loaded_own += 1,
                    Ok(Some(k)) if k.public_key().device_id() == exposed_id => followed += 1,
                    Ok(_) => {}
                    Err(_) => refused += 1,
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(followed, 0, "followed the symlink {followed} times");
        assert!(loaded_own > 0 && refused > 0, "{loaded_own} {refused}");
    }

    #[test]
    fn debug_shows_no_key_material() {
        let (k, _) = SoftwareKey::generate().unwrap();
        let id = k.public_key().device_id();
        assert_eq!(
            format!("{k:?}"),
            format!("SoftwareKey {{ device_id: {id:?}, .. }}")
        );
    }
}
