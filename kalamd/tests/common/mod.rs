//! Helpers for tests that run the real `kalamd` binary on a loopback port.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const ADMIN: &str = "admin-token-0123456789";
pub const ALICE: &str = "alice-token-0123456789";
pub const BOB: &str = "bob-token-0123456789abc";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A config file with three tokens (admin, alice, bob) plus `extra` YAML.
pub fn write_config(dir: &Path, port: u16, extra: &str) -> PathBuf {
    let path = dir.join("kalamd.yaml");
    let yaml = format!(
        "data_dir: {data}\nlisten: 127.0.0.1:{port}\nauth:\n  tokens:\n    - {{token: {ADMIN}, user_id: root, role: admin}}\n    - {{token: {ALICE}, user_id: alice, role: user}}\n    - {{token: {BOB}, user_id: bob, role: user}}\n{extra}",
        data = dir.join("data").display()
    );
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// An HTTP client that returns error statuses as responses, with a 30 s limit.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// POSTs SQL to `url`; returns the status and the JSON body (status 0 when the connection
/// failed). Usable from any thread.
pub fn post_sql(
    agent: &ureq::Agent,
    url: &str,
    token: Option<&str>,
    act_as: Option<&str>,
    sql: &str,
) -> (u16, Value) {
    let mut req = agent.post(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    if let Some(u) = act_as {
        req = req.header("X-Kalam-User-Id", u);
    }
    match req.send_json(serde_json::json!({ "sql": sql })) {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_json().unwrap_or(Value::Null),
        ),
        Err(_) => (0, Value::Null),
    }
}

pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    log: PathBuf,
}

pub fn kalamd_command(config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kalamd"));
    cmd.arg("--config").arg(config);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("KALAMD_")) {
        cmd.env_remove(k);
    }
    cmd
}

impl Daemon {
    /// Starts kalamd on `dir` (its data in `dir/data`) and waits until /ready says ready.
    pub fn start(dir: &Path, extra_yaml: &str) -> Daemon {
        Self::start_with_env(dir, extra_yaml, &[])
    }

    /// Like [`Daemon::start`], with extra environment variables.
    pub fn start_with_env(dir: &Path, extra_yaml: &str, env: &[(&str, &str)]) -> Daemon {
        let mut d = Self::spawn_with_env(dir, extra_yaml, env);
        d.wait_ready();
        d
    }

    /// Starts kalamd without waiting for it to be ready.
    pub fn spawn_with_env(dir: &Path, extra_yaml: &str, env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let config = write_config(dir, port, extra_yaml);
        let log = dir.join(format!("kalamd-{port}.log"));
        let mut cmd = kalamd_command(&config);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn kalamd");
        Daemon {
            child: Some(child),
            port,
            dir: dir.to_path_buf(),
            log,
        }
    }

    /// Waits (up to a minute) until /ready answers 200; panics if kalamd exits first.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("kalamd exited early ({status}): {}", self.log_text());
            }
            if self.get("/ready", None).0 == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kalamd never became ready: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("running")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = agent().get(self.url(path));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        match req.call() {
            Ok(mut r) => (
                r.status().as_u16(),
                r.body_mut().read_to_string().unwrap_or_default(),
            ),
            Err(_) => (0, String::new()),
        }
    }

    /// POSTs SQL; returns the status and the JSON body (status 0 when the connection failed).
    pub fn sql_with(&self, token: Option<&str>, act_as: Option<&str>, sql: &str) -> (u16, Value) {
        post_sql(&agent(), &self.url("/v1/api/sql"), token, act_as, sql)
    }

    pub fn sql(&self, token: &str, sql: &str) -> (u16, Value) {
        self.sql_with(Some(token), None, sql)
    }

    /// Runs SQL that must succeed; returns the last result's rows.
    pub fn rows(&self, token: &str, sql: &str) -> Vec<Value> {
        let (status, body) = self.sql(token, sql);
        assert_eq!(status, 200, "`{sql}`: {body}");
        body["results"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["rows"].as_array().cloned())
            .expect("rows")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with our own child's pid and a valid signal number.
        let rc = unsafe { libc::kill(self.pid() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Waits for the process to exit (up to `limit`).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kalamd did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The `kalamctl` binary built next to this test (needs `cargo test --workspace`).
/// Runs kalamctl on `data` with `--format json`: exit code, the JSON on stdout (Null if none)
/// and stderr.
pub fn kalamctl_json(args: &[&str], data: &Path) -> (i32, Value, String) {
    let out = Command::new(kalamctl_path())
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .args(["--format", "json"])
        .output()
        .expect("kalamctl");
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until a job of `job_type` is running and returns its id.
pub fn running_job(data: &Path, job_type: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, list, stderr) = kalamctl_json(&["jobs", "list", "--status", "running"], data);
        assert_eq!(code, 0, "{stderr}");
        if let Some(id) = list["jobs"]
            .as_array()
            .and_then(|jobs| jobs.iter().find(|j| j["job_type"] == job_type))
            .and_then(|j| j["job_id"].as_str())
        {
            return id.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no {job_type} job was seen running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn kalamctl_path() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join("kalamctl");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        path.display()
    );
    path
}
