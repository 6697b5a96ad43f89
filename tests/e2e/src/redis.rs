//! A private `redis-server` for a test: on a free 127.0.0.1 port, in a temporary
//! directory, with persistence off; stopped when dropped. Debian's `redis-server`
//! package provides it (scripts/test.sh installs it).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mdm_host::resp::{Reply, RespConnection};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        Self::start_with(&[]).await
    }

    /// With more `redis-server` arguments, e.g. `["--requirepass", "pw"]`.
    pub async fn start_with(args: &[&str]) -> RedisServer {
        let mut last = String::new();
        // Another process may take the port between probe and bind: try a few.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let port = free_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let child = match child {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                    "redis-server is not installed: scripts/test.sh installs it \
                     (apt-get install redis-server)"
                ),
                Err(e) => panic!("starting redis-server: {e}"),
            };
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(10) {
                if let Ok(Some(status)) = server.child.try_wait() {
                    last = format!("redis-server exited: {status}");
                    break;
                }
                if let Ok(mut c) = RespConnection::connect("127.0.0.1", port).await
                    && let Ok(r) = c.call(&[b"PING"]).await
                {
                    // A password-protected server answers NOAUTH: it is up too.
                    if matches!(r, Reply::Status(_) | Reply::Error(..)) {
                        return server;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if last.is_empty() {
                last = "redis-server did not answer within 10 s".into();
            }
        }
        panic!("{last}");
    }

    /// The app's `redis_url` for this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// One command on a fresh connection (no AUTH: for servers without a password,
    /// or put AUTH first in a [`RedisServer::commands`] call).
    pub async fn command(&self, args: &[&str]) -> Reply {
        self.commands(&[args]).await.pop().expect("one reply")
    }

    /// Commands in order on one fresh connection.
    pub async fn commands(&self, commands: &[&[&str]]) -> Vec<Reply> {
        let mut c = RespConnection::connect("127.0.0.1", self.port)
            .await
            .expect("connect to redis-server");
        let mut out = Vec::new();
        for args in commands {
            let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            out.push(c.call(&bytes).await.expect("redis-server answers"));
        }
        out
    }

    /// Keys in database 0.
    pub async fn dbsize(&self) -> i64 {
        match self.command(&["DBSIZE"]).await {
            Reply::Int(n) => n,
            other => panic!("DBSIZE: {other:?}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
