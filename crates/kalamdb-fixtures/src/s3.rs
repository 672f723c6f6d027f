//! A real S3-compatible server on loopback for tests: moto's (`scripts/moto-server.py`, moto's
//! own server with a fix to its signature check; moto is installed by `scripts/setup.sh`), one process per test, with buckets made and listed over plain HTTP
//! (moto does not check signatures unless asked to: [`S3Server::start_checking_credentials`]).
//! No S3 API is mocked inside the test process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `scripts/moto-server.py` of the checkout under test. Cargo runs a test in its package's
/// directory, below the workspace root that holds `scripts/`; a path compiled into this
/// crate could name another checkout that shared the target directory (cargo reuses a path
/// package's build wherever the workspace lies), so it is only the fallback.
fn moto_script() -> std::path::PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|dir| {
            dir.ancestors()
                .map(|a| a.join("scripts").join("moto-server.py"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/moto-server.py").into()
        })
}

/// A running moto server; killed when dropped.
pub struct S3Server {
    child: Child,
    port: u16,
}

impl S3Server {
    /// Starts a server on a free loopback port and waits until it answers.
    ///
    /// # Panics
    /// When moto is not installed (run `scripts/setup.sh`) or its server does not start.
    pub fn start() -> S3Server {
        S3Server::spawn(&[])
    }

    /// Starts a server that checks every request's signature, as S3 does: only the returned
    /// key pair (an IAM user allowed everything) is accepted; any other key or secret gets
    /// `403`. `buckets` are created first. The plain-HTTP helpers ([`S3Server::keys`] and the
    /// like) are refused on it too.
    pub fn start_checking_credentials(buckets: &[&str]) -> (S3Server, String, String) {
        // moto lets this many requests through unchecked: the readiness probe, the buckets
        // and the three IAM calls; any left over are used up below.
        let free = buckets.len() + 4;
        let server = S3Server::spawn(&[("INITIAL_NO_AUTH_ACTION_COUNT", &free.to_string())]);
        let script = "import sys, json, boto3, botocore\n\
            def client(svc, k='test', s='test'):\n\
            \x20   return boto3.client(svc, endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id=k, aws_secret_access_key=s)\n\
            for b in sys.argv[2:]: client('s3').create_bucket(Bucket=b)\n\
            iam = client('iam')\n\
            iam.create_user(UserName='kalamdb')\n\
            key = iam.create_access_key(UserName='kalamdb')['AccessKey']\n\
            iam.put_user_policy(UserName='kalamdb', PolicyName='all', PolicyDocument=json.dumps({'Version': '2012-10-17', 'Statement': [{'Effect': 'Allow', 'Action': '*', 'Resource': '*'}]}))\n\
            for _ in range(10):\n\
            \x20   try:\n\
            \x20       client('s3', key['AccessKeyId'], 'wrong').list_buckets()\n\
            \x20   except botocore.exceptions.ClientError:\n\
            \x20       break\n\
            else:\n\
            \x20   sys.exit('the server never started checking signatures')\n\
            print(key['AccessKeyId'], key['SecretAccessKey'])\n";
        let out = Command::new("python3")
            .args(["-c", script, &server.endpoint()])
            .args(buckets)
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        assert!(
            out.status.success(),
            "setting up credentials: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut words = text.split_whitespace().map(str::to_string);
        let (Some(id), Some(secret)) = (words.next(), words.next()) else {
            panic!("no key pair from the setup: {text}");
        };
        (server, id, secret)
    }

    fn spawn(env: &[(&str, &str)]) -> S3Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        // moto's server, with the one fix scripts/moto-server.py explains.
        let script = moto_script();
        let script = script.display();
        let child = Command::new("python3")
            .arg(script.to_string())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {script} ({e}); scripts/setup.sh installs moto")
            });
        let server = S3Server { child, port };
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.request("GET", "/", &[]).is_err() {
            assert!(
                Instant::now() < deadline,
                "the moto server did not answer on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A kalamd `storage.credentials` profile (YAML, indented under its name) for this server.
    pub fn profile_yaml(&self, timeout_seconds: u64) -> String {
        format!(
            "access_key_id: test\n  secret_access_key: test\n  region: us-east-1\n  endpoint: {}\n  allow_http: true\n  timeout_seconds: {timeout_seconds}\n",
            self.endpoint()
        )
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self
            .request("PUT", &format!("/{bucket}"), &[])
            .unwrap_or_else(|e| panic!("create bucket {bucket}: {e}"));
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// Every key under `prefix` in `bucket`, sorted.
    pub fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let (status, body) = self
            .request(
                "GET",
                &format!("/{bucket}?prefix={prefix}&max-keys=100000"),
                &[],
            )
            .unwrap_or_else(|e| panic!("list {bucket}: {e}"));
        assert_eq!(status, 200, "list {bucket}: {body}");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(str::to_string)
            .collect();
        keys.sort();
        keys
    }

    /// The bytes of an object, fetched with boto3 (a signed request from another S3 client;
    /// moto refuses anonymous reads of objects).
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        let script = "import sys, boto3\n\
            s3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n\
            sys.stdout.buffer.write(s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])['Body'].read())\n";
        let out = Command::new("python3")
            .args(["-c", script, &self.endpoint(), bucket, key])
            .output()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        assert!(
            out.status.success(),
            "get {bucket}/{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Writes an object (with boto3, signed).
    pub fn put(&self, bucket: &str, key: &str, bytes: &[u8]) {
        self.boto3(
            "s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.stdin.buffer.read())",
            bucket,
            key,
            bytes,
        );
    }

    /// Deletes an object (with boto3, signed).
    pub fn delete(&self, bucket: &str, key: &str) {
        self.boto3(
            "s3.delete_object(Bucket=sys.argv[2], Key=sys.argv[3])",
            bucket,
            key,
            &[],
        );
    }

    fn boto3(&self, call: &str, bucket: &str, key: &str, stdin: &[u8]) {
        let script = format!(
            "import sys, boto3\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')\n{call}\n"
        );
        let mut child = Command::new("python3")
            .args(["-c", &script, &self.endpoint(), bucket, key])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin)
                .unwrap_or_else(|e| panic!("stdin: {e}"));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("python3: {e}"));
        assert!(
            out.status.success(),
            "{call} on {bucket}/{key}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Multipart uploads started and neither completed nor aborted in `bucket`.
    pub fn pending_uploads(&self, bucket: &str) -> usize {
        let (status, body) = self
            .request("GET", &format!("/{bucket}?uploads"), &[])
            .unwrap_or_else(|e| panic!("list uploads {bucket}: {e}"));
        assert_eq!(status, 200, "list uploads {bucket}: {body}");
        body.matches("<Upload>").count()
    }

    /// Stops the server answering (SIGSTOP): connections are accepted, requests hang.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Lets a paused server answer again (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    fn request(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
        let (status, bytes) = self.raw(method, path, body)?;
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    fn raw(&self, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut response = Vec::new();
        s.read_to_end(&mut response)?;
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP response"))?;
        let head = String::from_utf8_lossy(&response[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {head}")))?;
        let mut body = response[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        Ok((status, body))
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&data[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(data.len());
        out.extend_from_slice(&data[start..end]);
        data = data.get(end + 2..).unwrap_or_default();
    }
    out
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill {sig} {pid}");
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
