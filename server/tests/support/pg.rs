//! A throwaway PostgreSQL cluster for the sync hub tests: initdb into a temporary
//! directory, started on a free local port (and a unix socket in that directory), fsync
//! off, stopped and removed on drop. As root (CI), the server runs as `postgres` through
//! `runuser`. Absent binaries skip the test with a printed reason (or fail it when
//! `IGNITER_REQUIRE_PG` is set).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

fn bin_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("IGNITER_PG_BIN") {
        let d = PathBuf::from(d);
        return (d.join("initdb").is_file() && d.join("pg_ctl").is_file()).then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let b = e.path().join("bin");
            (b.join("initdb").is_file() && b.join("pg_ctl").is_file()).then_some((v, b))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Cluster {
    /// Starts a cluster, or prints why it cannot and returns None.
    pub fn start() -> Option<Cluster> {
        let Some(bin) = bin_dir() else {
            let why = "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or $IGNITER_PG_BIN; install Debian's postgresql package";
            // CI with PostgreSQL installed sets IGNITER_REQUIRE_PG=1: a missing server fails.
            assert!(std::env::var_os("IGNITER_REQUIRE_PG").is_none(), "{why}");
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let as_postgres = is_root();
        let dir = tempfile::Builder::new()
            .prefix("igniter-pg-")
            .tempdir()
            .expect("temp dir");
        if as_postgres {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                eprintln!(
                    "SKIPPED: running as root and cannot hand a directory to the postgres user"
                );
                return None;
            }
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let c = Cluster {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = c.data();
        let out = c
            .cmd("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        c.pg_ctl("start");
        Some(c)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn cmd(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn pg_ctl(&self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=60 -c shared_buffers=16MB",
            self.port,
            self.dir.path().display()
        );
        let mut c = self.cmd("pg_ctl");
        c.args(["-D"])
            .arg(self.data())
            .args(["-w", "-t", "60", "-m", "immediate", "-o"])
            .arg(opts);
        c.arg("-l")
            .arg(self.dir.path().join("server.log"))
            .arg(action);
        let out = c.stdout(Stdio::null()).output().expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl {action} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Crash-restarts the server (immediate shutdown: no checkpoint, clients cut off).
    pub fn restart(&self) {
        self.pg_ctl("restart");
    }

    /// A connection string for database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates an empty database.
    pub fn create_db(&self, name: &str) -> String {
        let out = self
            .cmd("createdb")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ])
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .args(["-D"])
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Runs SQL on the hub and returns the rows (a fresh runtime and connection per call).
pub fn query(url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, _) = igniter_ledger_server::sync::connect(url).await.unwrap();
        client.query(sql, &[]).await.unwrap()
    })
}

/// The first column of the first row, as an i64.
pub fn count(url: &str, sql: &str) -> i64 {
    query(url, sql)[0].get(0)
}
