//! The `moto` AWS emulator (PyPI `moto[server]`, through
//! `scripts/moto-server`) on a loopback port, for the tests of the AWS
//! source; stopped on drop. Included by path from the ingest crate's tests
//! too.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub url: String,
    pub port: u16,
    child: Child,
}

fn script() -> PathBuf {
    workspace_root().join("scripts/moto-server")
}

/// The workspace root: the first directory above this crate with the script.
fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("scripts/moto-server").exists() {
        assert!(dir.pop(), "scripts/moto-server not found above the crate");
    }
    dir
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Moto {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(script())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("scripts/moto-server starts (python3 with venv)");
        let mut moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!("moto exited before answering: {status}");
            }
            assert!(Instant::now() < deadline, "moto did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// Writes a shared credentials file moto accepts (its default account
    /// is 123456789012).
    pub fn credentials_file(dir: &Path) -> PathBuf {
        let path = dir.join("aws-credentials");
        std::fs::write(
            &path,
            "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
        )
        .unwrap();
        path
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
