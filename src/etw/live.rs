//! `heapdb record` on Windows: the real-time heap session and its kernel companion.
//!
//! Two sessions (docs/windows.md, "Recording a heap session"):
//! - the heap session: `StartTraceW` with `Wnode.Guid` = the heap provider and the
//!   extension block of [`crate::decode::session`] (the process ids, the stack-walk
//!   hooks), real time, and into `--out` too;
//! - a private kernel system logger for process, thread and image events (the rundown
//!   of what runs already, then starts and ends).
//!
//! Both are opened for real-time consumption with `OpenTraceW` in
//! `PROCESS_TRACE_MODE_RAW_TIMESTAMP` (QPC values: what heapdb stores and what the
//! StackWalk payload names its event by), and one `ProcessTrace` over both handles
//! merges them by time on a thread of its own. Each `EVENT_RECORD` goes through the
//! same pure mapping as `--decoder etw` ([`crate::decode::record`]) and a bounded
//! channel to the recorder ([`crate::ingest::live`]).
//!
//! The sessions are stopped by [`LiveSource::stop`], by `Drop`, and, for a heapdb that
//! was killed before it could, by the next `heapdb record` (session names carry the
//! pid of the heapdb that started them: [`crate::decode::session::session_name`]).
//! Nothing here has been run on Windows yet (see docs/windows.md).

use std::ffi::c_void;
use std::os::windows::io::AsRawHandle;
use std::os::windows::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::mpsc::SyncSender;

use anyhow::{bail, Context as _, Result};
use windows::core::PCWSTR;
use windows::Win32::Foundation::{ERROR_SUCCESS, WIN32_ERROR};
use windows::Win32::System::Diagnostics::Etw::{
    CloseTrace, ControlTraceW, OpenTraceW, ProcessTrace, QueryAllTracesW, StartTraceW,
    CONTROLTRACE_HANDLE, EVENT_RECORD, EVENT_TRACE_CONTROL_STOP, EVENT_TRACE_LOGFILEW,
    EVENT_TRACE_PROPERTIES, PROCESSTRACE_HANDLE, PROCESS_TRACE_MODE_EVENT_RECORD,
    PROCESS_TRACE_MODE_RAW_TIMESTAMP, PROCESS_TRACE_MODE_REAL_TIME,
};
use windows::Win32::System::Performance::{QueryPerformanceCounter, QueryPerformanceFrequency};
use windows::Win32::System::SystemInformation::GetSystemTimePreciseAsFileTime;

use crate::decode::record::{fields_of, map_record, RawEventRecord, Timestamps};
use crate::decode::session::{
    control_buffer, lost, properties, session_name, session_owner, SessionSpec, PROPERTIES_SIZE,
};
use crate::etl::logfile::ClockType;
use crate::etl::LogfileHeader;
use crate::ingest::live::{Feed, LiveSource, SessionInfo};

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<EVENT_TRACE_PROPERTIES>() == PROPERTIES_SIZE);

/// `CREATE_SUSPENDED`: the program `--exe` starts waits until its heap is traced.
const CREATE_SUSPENDED: u32 = 0x0000_0004;
/// `INVALID_PROCESSTRACE_HANDLE` (64-bit).
const INVALID_HANDLE: u64 = u64::MAX;
/// `PROCESS_QUERY_LIMITED_INFORMATION`, `STILL_ACTIVE`.
const QUERY_LIMITED: u32 = 0x1000;
const STILL_ACTIVE: u32 = 259;

#[link(name = "kernel32")]
extern "system" {
    fn OpenProcess(access: u32, inherit: i32, pid: u32) -> *mut c_void;
    fn GetExitCodeProcess(process: *mut c_void, code: *mut u32) -> i32;
    fn CloseHandle(handle: *mut c_void) -> i32;
}

#[link(name = "ntdll")]
extern "system" {
    /// Resumes every thread of a process (the main thread of one created suspended).
    fn NtResumeProcess(process: *mut c_void) -> i32;
}

/// What to trace.
#[derive(Debug, Clone)]
pub enum Target {
    Pids(Vec<u32>),
    /// Started suspended, traced, then resumed.
    Program {
        exe: PathBuf,
        args: Vec<String>,
    },
}

/// The heap and kernel sessions of one recording.
pub struct HeapSession {
    target: Target,
    stacks: bool,
    out: Option<PathBuf>,
    child: Option<Child>,
    pids: Vec<u32>,
    heap_name: String,
    kernel_name: String,
    /// Sessions started (and not stopped yet).
    started: Vec<String>,
    thread: Option<std::thread::JoinHandle<()>>,
    lost: (u32, u32),
}

impl HeapSession {
    pub fn new(target: Target, stacks: bool, out: Option<PathBuf>) -> HeapSession {
        let me = std::process::id();
        HeapSession {
            target,
            stacks,
            out,
            child: None,
            pids: Vec::new(),
            heap_name: session_name(me, "heap"),
            kernel_name: session_name(me, "kernel"),
            started: Vec::new(),
            thread: None,
            lost: (0, 0),
        }
    }

    fn start_session(&mut self, spec: &SessionSpec) -> Result<()> {
        let bytes = properties(spec).map_err(|e| anyhow::anyhow!("{}: {e}", spec.name))?;
        let mut words = to_words(&bytes);
        let name = wide(&spec.name);
        let mut handle = CONTROLTRACE_HANDLE::default();
        // SAFETY: `words` holds the properties, the names and the extension block, as
        // long as Wnode.BufferSize says, 8-byte aligned; the name is NUL-terminated.
        let rc = unsafe {
            StartTraceW(
                &mut handle,
                PCWSTR(name.as_ptr()),
                words.as_mut_ptr() as *mut EVENT_TRACE_PROPERTIES,
            )
        };
        check(rc).with_context(|| {
            format!(
                "StartTraceW({}) failed (heapdb record needs an administrator, or a member of Performance Log Users)",
                spec.name
            )
        })?;
        self.started.push(spec.name.clone());
        Ok(())
    }

    fn stop_sessions(&mut self) -> Result<()> {
        let mut first_error = None;
        for name in std::mem::take(&mut self.started) {
            match stop_session(&name) {
                Ok(buf) => {
                    if name == self.heap_name {
                        self.lost = lost(&buf);
                    }
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn start_all(&mut self, tx: SyncSender<Feed>) -> Result<SessionInfo> {
        stop_orphans();
        self.pids = match &self.target {
            Target::Pids(p) => p.clone(),
            Target::Program { exe, args } => {
                let child = Command::new(exe)
                    .args(args)
                    .creation_flags(CREATE_SUSPENDED)
                    .spawn()
                    .with_context(|| format!("{}: cannot start it", exe.display()))?;
                let pid = child.id();
                self.child = Some(child);
                vec![pid]
            }
        };
        // The clock: QPC (Wnode.ClientContext 1), anchored now.
        let (mut freq, mut qpc) = (0i64, 0i64);
        // SAFETY: plain out-parameters.
        let now = unsafe {
            QueryPerformanceFrequency(&mut freq)?;
            QueryPerformanceCounter(&mut qpc)?;
            GetSystemTimePreciseAsFileTime()
        };
        let start_time = (now.dwHighDateTime as u64) << 32 | now.dwLowDateTime as u64;
        self.start_session(&SessionSpec::kernel(&self.kernel_name))?;
        let out = self.out.as_ref().map(|p| p.display().to_string());
        self.start_session(&SessionSpec::heap(
            &self.heap_name,
            &self.pids,
            self.stacks,
            out.as_deref(),
        ))?;
        // Kernel events get CPUs of their own (offset): ProcessTrace delivers each
        // session in order, not the two merged, and heapdb's per-CPU streams expect
        // each stream in time order.
        let (heap, header) = Consumer::open(&self.heap_name, tx.clone(), 0)?;
        let kernel = match Consumer::open(&self.kernel_name, tx.clone(), KERNEL_CPU_OFFSET) {
            Ok((k, _)) => k,
            Err(e) => {
                heap.close();
                return Err(e);
            }
        };
        self.thread = Some(
            std::thread::Builder::new()
                .name("heapdb-etw-live".into())
                .spawn(move || {
                    let k = std::thread::spawn(move || kernel.process());
                    let mut r = heap.process();
                    let rk = k
                        .join()
                        .unwrap_or_else(|_| Err("the kernel session's thread panicked".into()));
                    if r.is_ok() {
                        r = rk;
                    }
                    let _ = tx.send(Feed::End(r));
                })?,
        );
        if let Some(child) = &self.child {
            // SAFETY: the handle is the child's, open while `child` lives.
            let rc = unsafe { NtResumeProcess(child.as_raw_handle()) };
            if rc < 0 {
                bail!("NtResumeProcess failed (NTSTATUS {rc:#x}): the program stays suspended");
            }
        }
        let header = LogfileHeader {
            buffer_size: 1024 * 1024,
            os_major: header.0,
            os_minor: header.1,
            os_build: header.2,
            format_major: 2,
            format_minor: 0,
            cpu_count: header.3,
            end_time: 0,
            timer_resolution: 0,
            maximum_file_size: 0,
            log_file_mode: 0x100,
            buffers_written: 0,
            pointer_size: std::mem::size_of::<usize>() as u32,
            events_lost: 0,
            cpu_speed_mhz: 0,
            timezone_bias_minutes: 0,
            boot_time: 0,
            perf_freq: freq as u64,
            start_time,
            clock_type: ClockType::Qpc,
            buffers_lost: 0,
            logger_name: self.heap_name.clone(),
            log_file_name: out.clone().unwrap_or_default(),
            start_raw: qpc as u64,
            layout_pointer_size: std::mem::size_of::<usize>() as u8,
        };
        let what = match &self.target {
            Target::Pids(p) => format!(
                "pid {}",
                p.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
            ),
            Target::Program { exe, .. } => format!("{} (pid {})", exe.display(), self.pids[0]),
        };
        let file_name = match &self.target {
            Target::Program { exe, .. } => exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Target::Pids(_) => self.heap_name.clone(),
        };
        Ok(SessionInfo {
            header,
            path: format!("record:{what}"),
            file_name,
            identity: format!("{} {what} {start_time}", self.heap_name),
        })
    }
}

impl LiveSource for HeapSession {
    fn start(&mut self, tx: SyncSender<Feed>) -> Result<SessionInfo> {
        let r = self.start_all(tx);
        if r.is_err() {
            let _ = self.stop_sessions();
            if let Some(mut c) = self.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        r
    }

    fn stop(&mut self) -> Result<()> {
        self.stop_sessions()
    }

    fn traced_exited(&mut self) -> bool {
        if let Some(c) = &mut self.child {
            return matches!(c.try_wait(), Ok(Some(_)));
        }
        !self.pids.is_empty() && self.pids.iter().all(|&p| !process_alive(p))
    }

    fn lost(&self) -> (u32, u32) {
        self.lost
    }
}

impl Drop for HeapSession {
    fn drop(&mut self) {
        let _ = self.stop_sessions();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// CPU numbers of the kernel session's events start here.
const KERNEL_CPU_OFFSET: u16 = 0x4000;

/// What a callback needs: where events go, and the CPU offset of its session.
struct Delivery {
    tx: SyncSender<Feed>,
    cpu_offset: u16,
}

/// One real-time session opened for consumption.
struct Consumer {
    handle: PROCESSTRACE_HANDLE,
    /// The callback's state, a `Box<Delivery>` (freed once the trace is closed).
    state: usize,
}

impl Consumer {
    /// Opens a real-time session; returns it and (OS major, minor, build, CPUs) from
    /// the header `OpenTraceW` fills in.
    fn open(
        name: &str,
        tx: SyncSender<Feed>,
        cpu_offset: u16,
    ) -> Result<(Consumer, (u8, u8, u32, u32))> {
        let state = Box::into_raw(Box::new(Delivery { tx, cpu_offset }));
        let mut wname = wide(name);
        // SAFETY: an all-zero EVENT_TRACE_LOGFILEW is valid (null pointers, no
        // callbacks).
        let mut logfile: EVENT_TRACE_LOGFILEW = unsafe { std::mem::zeroed() };
        logfile.LoggerName = windows::core::PWSTR(wname.as_mut_ptr());
        logfile.Anonymous1.ProcessTraceMode = PROCESS_TRACE_MODE_REAL_TIME
            | PROCESS_TRACE_MODE_EVENT_RECORD
            | PROCESS_TRACE_MODE_RAW_TIMESTAMP;
        logfile.Anonymous2.EventRecordCallback = Some(on_event);
        logfile.Context = state as *mut c_void;
        // SAFETY: `logfile` and the name it points to live across the call.
        let handle = unsafe { OpenTraceW(&mut logfile) };
        if handle.Value == INVALID_HANDLE {
            let e = std::io::Error::last_os_error();
            // SAFETY: no trace holds the state.
            drop(unsafe { Box::from_raw(state) });
            bail!("OpenTraceW({name}) failed: {e}");
        }
        let h = &logfile.LogfileHeader;
        // SAFETY: plain integers in unions of integers.
        let (major, minor) = unsafe {
            (
                h.Anonymous1.VersionDetail.MajorVersion,
                h.Anonymous1.VersionDetail.MinorVersion,
            )
        };
        Ok((
            Consumer {
                handle,
                state: state as usize,
            },
            (major, minor, h.ProviderVersion, h.NumberOfProcessors),
        ))
    }

    /// Delivers the session's events until it is stopped, then closes it.
    fn process(self) -> std::result::Result<(), String> {
        // SAFETY: an open real-time trace; ProcessTrace returns once the session is
        // stopped; the callback's state lives until `close`.
        let rc = unsafe { ProcessTrace(&[self.handle], None, None) };
        self.close();
        check(rc).map_err(|e| format!("ProcessTrace failed: {e}"))
    }

    fn close(self) {
        // SAFETY: after CloseTrace (and ProcessTrace's return, when it ran) no callback
        // runs any more: the state is freed once.
        unsafe {
            let _ = CloseTrace(self.handle);
            drop(Box::from_raw(self.state as *mut Delivery));
        }
    }
}

/// The per-event callback: `UserContext` is the consumer's [`Delivery`].
unsafe extern "system" fn on_event(record: *mut EVENT_RECORD) {
    if record.is_null() {
        return;
    }
    // SAFETY: RawEventRecord mirrors EVENT_RECORD (#[repr(C)], size checked in
    // decode::record); ETW keeps the record and what it points to alive during the
    // callback; UserContext is the Box<Delivery> given to OpenTraceW, alive while
    // ProcessTrace runs.
    let raw = &*(record as *const RawEventRecord);
    let target = raw.user_context as *const Delivery;
    if target.is_null() {
        return;
    }
    let target = &*target;
    let fields = fields_of(raw);
    let mut event = map_record(&fields, &Timestamps::Raw);
    event.cpu = event.cpu.saturating_add(target.cpu_offset);
    // Blocks while the recorder is behind (ETW's buffers then fill, and the session
    // counts what it loses); fails once the recorder is gone.
    let _ = target.tx.send(Feed::Event(Box::new(event)));
}

/// Stops a session by name; returns the properties Windows filled (lost counts).
fn stop_session(name: &str) -> Result<Vec<u8>> {
    let mut words = to_words(&control_buffer());
    let wname = wide(name);
    // SAFETY: the buffer is as long as its Wnode.BufferSize and 8-byte aligned.
    let rc = unsafe {
        ControlTraceW(
            CONTROLTRACE_HANDLE::default(),
            PCWSTR(wname.as_ptr()),
            words.as_mut_ptr() as *mut EVENT_TRACE_PROPERTIES,
            EVENT_TRACE_CONTROL_STOP,
        )
    };
    check(rc).with_context(|| format!("ControlTraceW({name}, stop) failed"))?;
    Ok(from_words(&words))
}

/// Stops the sessions a killed heapdb left running (named by [`session_name`] with a
/// pid that no longer runs).
fn stop_orphans() {
    const MAX: usize = 64;
    let mut bufs: Vec<Vec<u64>> = (0..MAX).map(|_| to_words(&control_buffer())).collect();
    let mut ptrs: Vec<*mut EVENT_TRACE_PROPERTIES> = bufs
        .iter_mut()
        .map(|b| b.as_mut_ptr() as *mut EVENT_TRACE_PROPERTIES)
        .collect();
    let mut count = 0u32;
    // SAFETY: MAX buffers, each as long as its Wnode.BufferSize.
    let rc = unsafe { QueryAllTracesW(&mut ptrs, &mut count) };
    if rc != ERROR_SUCCESS {
        return;
    }
    for b in bufs.iter().take(count as usize) {
        let name = read_wide(&from_words(b), PROPERTIES_SIZE);
        if let Some(owner) = session_owner(&name) {
            if owner != std::process::id() && !process_alive(owner) {
                let _ = stop_session(&name);
            }
        }
    }
}

fn process_alive(pid: u32) -> bool {
    // SAFETY: the handle is checked and closed.
    unsafe {
        let h = OpenProcess(QUERY_LIMITED, 0, pid);
        if h.is_null() {
            return false;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(h, &mut code) != 0;
        CloseHandle(h);
        ok && code == STILL_ACTIVE
    }
}

fn check(rc: WIN32_ERROR) -> Result<()> {
    if rc == ERROR_SUCCESS {
        Ok(())
    } else {
        Err(std::io::Error::from_raw_os_error(rc.0 as i32).into())
    }
}

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

fn read_wide(b: &[u8], at: usize) -> String {
    let units: Vec<u16> = b
        .get(at..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

/// Bytes as 8-byte-aligned words (what Windows reads EVENT_TRACE_PROPERTIES from).
fn to_words(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks(8)
        .map(|c| {
            let mut w = [0u8; 8];
            w[..c.len()].copy_from_slice(c);
            u64::from_le_bytes(w)
        })
        .collect()
}

fn from_words(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}
