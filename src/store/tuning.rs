//! Process-wide SQLite settings, applied before anything opens a database.

/// Process-wide SQLite settings, for a process that has not used SQLite yet (the binary's
/// `main` calls it first thing; tests do without it):
///
/// - multi-thread mode (`SQLITE_CONFIG_MULTITHREAD`): SQLite stops taking a connection's mutex
///   on every call (each `sqlite3_step`, each column read). Safe here because a connection is
///   only ever used by one thread at a time: diesel's connections are not `Sync`, and the pools
///   hand each to one thread.
/// - no memory statistics (`SQLITE_CONFIG_MEMSTATUS` 0, which SQLite's documentation
///   recommends): every allocation otherwise takes a global mutex to count itself.
///
/// Together they were 8–9% of the writer thread's time under check-in load (perf). Returns
/// whether SQLite accepted them; it refuses once initialised, which costs speed, not safety.
pub fn tune_sqlite_process() -> bool {
    use libsqlite3_sys::{
        sqlite3_config, SQLITE_CONFIG_MEMSTATUS, SQLITE_CONFIG_MULTITHREAD, SQLITE_OK,
    };
    // SAFETY: sqlite3_config must not run while another thread uses SQLite, and only before
    // sqlite3_initialize; `main` calls this before any thread or connection exists, and after
    // initialisation SQLite answers SQLITE_MISUSE without changing anything. The variadic
    // arguments are those each option documents (none; one int).
    unsafe {
        sqlite3_config(SQLITE_CONFIG_MULTITHREAD) == SQLITE_OK
            && sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0 as std::os::raw::c_int) == SQLITE_OK
    }
}
