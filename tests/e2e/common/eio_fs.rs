//! A filesystem that returns errors on demand: a minimal FUSE server in the test process.
//! Its root holds `tokens/`, which holds the token files added; `set_failing(true)` makes
//! every lookup fail with EIO, as a dying disk or an unreachable network filesystem does.
//!
//! Mounting FUSE directly needs root (CAP_SYS_ADMIN) and /dev/fuse; `mount` says why not
//! otherwise. No caching: entries and attributes are valid for 0 s, so the kernel asks this
//! server on every lookup the module makes.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const ROOT: u64 = 1;
const TOKENS: u64 = 2;

const LOOKUP: u32 = 1;
const FORGET: u32 = 2;
const GETATTR: u32 = 3;
const INIT: u32 = 26;
const INTERRUPT: u32 = 36;
const BATCH_FORGET: u32 = 42;

#[derive(Default)]
struct State {
    /// Token name to node id (3 and up).
    tokens: HashMap<Vec<u8>, u64>,
}

pub struct EioFs {
    mountpoint: PathBuf,
    failing: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
    server: Option<thread::JoinHandle<()>>,
}

impl EioFs {
    /// Mounts on `mountpoint` (an empty directory).
    pub fn mount(mountpoint: &Path) -> io::Result<EioFs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(io::Error::other("mounting FUSE needs root"));
        }
        let dev = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/fuse")?;
        let target = CString::new(mountpoint.as_os_str().as_bytes()).map_err(io::Error::other)?;
        let data = CString::new(format!(
            "fd={},rootmode=40000,user_id=0,group_id=0,allow_other",
            dev.as_raw_fd()
        ))
        .map_err(io::Error::other)?;
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"wcs-eio-fs".as_ptr(),
                target.as_ptr(),
                c"fuse".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let failing = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State::default()));
        let (f, s) = (failing.clone(), state.clone());
        let server = thread::spawn(move || serve(dev, &f, &s));
        Ok(EioFs {
            mountpoint: mountpoint.to_path_buf(),
            failing,
            state,
            server: Some(server),
        })
    }

    pub fn tokens_dir(&self) -> PathBuf {
        self.mountpoint.join("tokens")
    }

    pub fn add_token(&self, name: &str) {
        let mut s = self.state.lock().unwrap();
        let id = 3 + s.tokens.len() as u64;
        s.tokens.entry(name.as_bytes().to_vec()).or_insert(id);
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }
}

impl Drop for EioFs {
    fn drop(&mut self) {
        if let Ok(target) = CString::new(self.mountpoint.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated path.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
        // The server's read fails once the kernel lets the connection go.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.server.as_ref().is_some_and(|t| !t.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        if let Some(t) = self.server.take().filter(|t| t.is_finished()) {
            let _ = t.join();
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().unwrap())
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().unwrap())
}

fn serve(dev: File, failing: &AtomicBool, state: &Mutex<State>) {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        // SAFETY: reading into a buffer we own, of the length given.
        let n = unsafe { libc::read(dev.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR | libc::EAGAIN | libc::ENOENT) => continue,
                _ => return, // ENODEV: unmounted
            }
        }
        let req = &buf[..n as usize];
        if req.len() < 40 {
            continue;
        }
        // fuse_in_header: len, opcode, unique, nodeid, uid, gid, pid, padding
        let opcode = u32_at(req, 4);
        let unique = u64_at(req, 8);
        let node = u64_at(req, 16);
        let body = &req[40..];
        let reply: Result<Vec<u8>, i32> = match opcode {
            INIT => Ok(init_reply(body)),
            LOOKUP => {
                let name = body.split(|b| *b == 0).next().unwrap_or_default();
                lookup(node, name, failing, state)
            }
            GETATTR => match node {
                ROOT | TOKENS => Ok(attr_out(node, true)),
                _ if failing.load(Ordering::SeqCst) => Err(libc::EIO),
                _ => Ok(attr_out(node, false)),
            },
            FORGET | BATCH_FORGET | INTERRUPT => continue,
            _ => Err(libc::ENOSYS),
        };
        let (error, payload) = match reply {
            Ok(p) => (0i32, p),
            Err(e) => (-e, Vec::new()),
        };
        let mut out = Vec::with_capacity(16 + payload.len());
        out.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
        out.extend_from_slice(&error.to_ne_bytes());
        out.extend_from_slice(&unique.to_ne_bytes());
        out.extend_from_slice(&payload);
        // SAFETY: writing a buffer we own, of the length given.
        unsafe { libc::write(dev.as_raw_fd(), out.as_ptr().cast(), out.len()) };
    }
}

fn lookup(
    parent: u64,
    name: &[u8],
    failing: &AtomicBool,
    state: &Mutex<State>,
) -> Result<Vec<u8>, i32> {
    if failing.load(Ordering::SeqCst) {
        return Err(libc::EIO);
    }
    match parent {
        ROOT if name == b"tokens" => Ok(entry_out(TOKENS, true)),
        TOKENS => match state.lock().unwrap().tokens.get(name) {
            Some(id) => Ok(entry_out(*id, false)),
            None => Err(libc::ENOENT),
        },
        _ => Err(libc::ENOENT),
    }
}

/// fuse_init_out for protocol 7.31 with no optional features.
fn init_reply(init_in: &[u8]) -> Vec<u8> {
    let max_readahead = init_in
        .get(8..12)
        .map_or(0, |b| u32::from_ne_bytes(b.try_into().unwrap()));
    let mut out = Vec::with_capacity(64);
    for v in [7u32, 31, max_readahead, 0] {
        out.extend_from_slice(&v.to_ne_bytes());
    }
    out.extend_from_slice(&16u16.to_ne_bytes()); // max_background
    out.extend_from_slice(&12u16.to_ne_bytes()); // congestion_threshold
    out.extend_from_slice(&4096u32.to_ne_bytes()); // max_write
    out.extend_from_slice(&1u32.to_ne_bytes()); // time_gran
    out.resize(64, 0);
    out
}

/// fuse_attr (88 bytes).
fn attr(node: u64, dir: bool) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut a = Vec::with_capacity(88);
    for v in [node, 0, 0, now, now, now] {
        a.extend_from_slice(&v.to_ne_bytes()); // ino, size, blocks, atime, mtime, ctime
    }
    let mode = if dir {
        libc::S_IFDIR | 0o755
    } else {
        libc::S_IFREG | 0o644
    };
    let nlink = if dir { 2 } else { 1 };
    for v in [0u32, 0, 0, mode, nlink, 0, 0, 0, 4096, 0] {
        a.extend_from_slice(&v.to_ne_bytes()); // nsecs, mode, nlink, uid, gid, rdev, blksize, flags
    }
    a
}

/// fuse_entry_out: valid for 0 s, so every lookup comes back here.
fn entry_out(node: u64, dir: bool) -> Vec<u8> {
    let mut e = Vec::with_capacity(128);
    for v in [node, 0, 0, 0] {
        e.extend_from_slice(&v.to_ne_bytes()); // nodeid, generation, entry_valid, attr_valid
    }
    e.extend_from_slice(&[0u8; 8]); // entry_valid_nsec, attr_valid_nsec
    e.extend(attr(node, dir));
    e
}

/// fuse_attr_out: valid for 0 s.
fn attr_out(node: u64, dir: bool) -> Vec<u8> {
    let mut o = vec![0u8; 16]; // attr_valid, attr_valid_nsec, dummy
    o.extend(attr(node, dir));
    o
}
