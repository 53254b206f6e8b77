//! A throwaway PostgreSQL cluster for tests.
//!
//! [`PgCluster::start`] finds PostgreSQL's server binaries (Debian's
//! `/usr/lib/postgresql/<major>/bin`, else `initdb` on `PATH`), installing
//! Debian's `postgresql` package first when they are missing and we are root
//! on Debian. It then runs `initdb` into a fresh temporary directory and
//! starts the server listening on 127.0.0.1 at a free port and on a unix
//! socket in that directory. Dropping the [`PgCluster`] stops the server
//! (`pg_ctl stop -m immediate`) and removes the directory, also when the
//! test panics.
//!
//! PostgreSQL refuses to run as root, so as root every server command runs
//! as the `postgres` user (`runuser`), which owns the temporary directory.
//!
//! Durability is production's: the server runs with PostgreSQL's defaults
//! `fsync = on`, `synchronous_commit = on`, `full_page_writes = on`. Only
//! `initdb` runs with `--no-sync` (it skips flushing the freshly created
//! template files, which a crash during a test would lose anyway); commits the
//! tests make are flushed as in production.
//!
//! Authentication is `trust` for the `postgres` superuser: the cluster
//! lives for one test process and listens only on loopback.
//!
//! [`PgCluster::start_or_skip`] is what tests call: it returns `None` (after
//! printing why) only when PostgreSQL cannot be installed and the `CI`
//! environment variable is unset; under CI it panics instead, so a CI run
//! never passes by skipping.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The Debian command [`ensure_installed`] runs (also shown to a user who
/// must run it by hand).
pub const DEBIAN_INSTALL: &str = "apt-get update && apt-get install -y postgresql";
const APT_UPDATE_TIMEOUT: Duration = Duration::from_secs(300);
const APT_INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(60);
/// The OS user PostgreSQL runs as when the tests run as root.
const SERVER_USER: &str = "postgres";

/// A running throwaway cluster; dropped, it stops and its directory is gone.
#[derive(Debug)]
pub struct PgCluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_user: Option<String>,
}

/// What to do when PostgreSQL's binaries are (not) there.
#[derive(Debug, PartialEq, Eq)]
pub enum Availability {
    /// The binaries are in this directory.
    Found(PathBuf),
    /// Not installed and not installable here, outside CI: the test skips.
    Skip(String),
    /// Not installed and not installable, under CI: the test fails.
    Fail(String),
}

/// Decides between running, skipping and failing: skipping only outside CI.
pub fn availability(found: Result<PathBuf, String>, ci: bool) -> Availability {
    match found {
        Ok(bin) => Availability::Found(bin),
        Err(why) if ci => Availability::Fail(format!("PostgreSQL is required under CI: {why}")),
        Err(why) => Availability::Skip(format!(
            "skipping: PostgreSQL is not available ({why}); install it ({DEBIAN_INSTALL}) or run as root on Debian"
        )),
    }
}

/// `CI` set to anything but empty, `0` or `false` counts as CI.
pub fn running_under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false"))
}

impl PgCluster {
    /// Starts a cluster, or `None` when the test should skip (see the crate
    /// docs); panics when PostgreSQL is required (CI) or fails to start.
    pub fn start_or_skip() -> Option<PgCluster> {
        match availability(ensure_installed(), running_under_ci()) {
            Availability::Found(bin) => {
                Some(PgCluster::start_with(&bin).unwrap_or_else(|e| panic!("{e}")))
            }
            Availability::Skip(why) => {
                eprintln!("{why}");
                None
            }
            Availability::Fail(why) => panic!("{why}"),
        }
    }

    /// Starts a cluster from the server binaries in `bin`.
    pub fn start_with(bin: &Path) -> Result<PgCluster, String> {
        let as_user = is_root().then(|| SERVER_USER.to_string());
        let dir = fresh_dir()?;
        // Constructed before anything can fail so Drop cleans up.
        let mut cluster = PgCluster {
            bin: bin.to_path_buf(),
            dir,
            port: 0,
            as_user,
        };
        if let Some(user) = &cluster.as_user {
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&cluster.dir)
                .status()
                .map_err(|e| format!("chown: {e}"))?;
            if !status.success() {
                return Err(format!(
                    "chown {user} {} failed ({status})",
                    cluster.dir.display()
                ));
            }
        }
        let data = cluster.data_dir();
        cluster.run(
            cluster
                .server_command("initdb")
                .args(["--no-sync", "--auth=trust", "--username=postgres"])
                .args(["--encoding=UTF8", "--locale=C"])
                .arg("-D")
                .arg(&data),
            SERVER_START_TIMEOUT,
        )?;
        // A port free now may be taken before the server binds it; retry
        // with another one then.
        let mut last_error = String::new();
        for _ in 0..3 {
            cluster.port = free_port()?;
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {}",
                cluster.port,
                cluster.dir.display()
            );
            let started = cluster.run(
                cluster
                    .server_command("pg_ctl")
                    .arg("-D")
                    .arg(&data)
                    .arg("-l")
                    .arg(cluster.dir.join("server.log"))
                    .args(["-w", "-t", "60", "-o", &options, "start"]),
                SERVER_START_TIMEOUT,
            );
            match started {
                Ok(_) => return Ok(cluster),
                Err(e) => last_error = format!("{e}\n{}", cluster.server_log()),
            }
        }
        Err(format!("PostgreSQL did not start: {last_error}"))
    }

    /// The loopback TCP port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the data directory, the socket and the log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A `postgres://` URL for database `db` over loopback TCP.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` (letters, digits and `_` only) and returns
    /// its URL: one cluster can serve many tests, each on its own database.
    pub fn create_database(&self, name: &str) -> Result<String, String> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("database name {name:?}: use letters, digits and _"));
        }
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(name))
    }

    /// Runs `sql` in database `db` with `psql` over the cluster's socket
    /// and returns its unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = self.run(
            Command::new(self.client("psql"))
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
                .args(["-c", sql]),
            Duration::from_secs(60),
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The server's log so far (for failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn client(&self, name: &str) -> PathBuf {
        let beside = self.bin.join(name);
        if beside.exists() {
            beside
        } else {
            PathBuf::from(name)
        }
    }

    /// A server-side command, run as the `postgres` user when we are root.
    fn server_command(&self, name: &str) -> Command {
        let program = self.bin.join(name);
        match &self.as_user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn run(&self, cmd: &mut Command, limit: Duration) -> Result<Output, String> {
        // The server's own working directory must be readable by it.
        cmd.current_dir(&self.dir);
        run_with_timeout(cmd, limit)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.data_dir().join("postmaster.pid").exists() {
            let data = self.data_dir();
            let _ = self.run(
                self.server_command("pg_ctl").arg("-D").arg(&data).args([
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ]),
                Duration::from_secs(30),
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server binaries' directory, installing Debian's package first when
/// missing (as root on Debian; one retry, each step under a time-out).
pub fn ensure_installed() -> Result<PathBuf, String> {
    if let Some(bin) = find_bin() {
        return Ok(bin);
    }
    if !(is_root() && Path::new("/etc/debian_version").exists()) {
        return Err(format!(
            "no initdb found and not root on Debian, so cannot run {DEBIAN_INSTALL}"
        ));
    }
    let mut last_error = String::new();
    for _attempt in 0..2 {
        match apt_install() {
            Ok(()) => break,
            Err(e) => last_error = e,
        }
    }
    find_bin().ok_or_else(|| format!("{DEBIAN_INSTALL} did not provide initdb: {last_error}"))
}

fn apt_install() -> Result<(), String> {
    run_with_timeout(Command::new("apt-get").arg("update"), APT_UPDATE_TIMEOUT)?;
    run_with_timeout(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "postgresql"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
        APT_INSTALL_TIMEOUT,
    )?;
    Ok(())
}

/// Debian's newest `/usr/lib/postgresql/<major>/bin`, else `initdb`'s
/// directory on `PATH`.
fn find_bin() -> Option<PathBuf> {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let major: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .max_by_key(|(major, _)| *major)
        .map(|(_, bin)| bin);
    debian.or_else(|| {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
        })
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn fresh_dir() -> Result<PathBuf, String> {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Short: the unix socket path must stay under 107 bytes.
    let dir = std::env::temp_dir().join(format!(
        "pgt-{}-{}-{nanos:x}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir)
}

fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free loopback port: {e}"))
}

fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Result<Output, String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {cmd:?}: {e}"))?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let started = Instant::now();
    match rx.recv_timeout(limit) {
        Ok(Ok(out)) if out.status.success() => Ok(out),
        Ok(Ok(out)) => Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(Err(e)) => Err(format!("{cmd:?}: {e}")),
        Err(_) => {
            // The waiting thread owns the child; end it by its pid.
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
            Err(format!(
                "{cmd:?} did not finish within {:?}",
                started.elapsed()
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_postgres_skips_outside_ci_and_fails_under_ci() {
        let missing = || Err("no initdb".to_string());
        assert!(
            matches!(availability(missing(), false), Availability::Skip(m) if m.contains("skipping"))
        );
        assert!(
            matches!(availability(missing(), true), Availability::Fail(m) if m.contains("required under CI"))
        );
        let bin = PathBuf::from("/usr/lib/postgresql/15/bin");
        assert_eq!(
            availability(Ok(bin.clone()), true),
            Availability::Found(bin)
        );
    }

    #[test]
    fn database_names_are_checked_before_reaching_sql() {
        let cluster = PgCluster {
            bin: PathBuf::from("/nonexistent"),
            dir: PathBuf::from("/nonexistent-pgtest"),
            port: 1,
            as_user: None,
        };
        assert!(
            cluster
                .create_database("x; DROP DATABASE postgres")
                .is_err()
        );
        assert!(cluster.create_database("").is_err());
    }
}
