//! The control plane leaves no process behind: when its supervisor is stopped, when the process that started it
//! ends (stdin closes), and when the supervisor itself is killed with SIGKILL.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sluice_e2e::cluster::ClusterInfo;

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_sluice-e2e");

fn start(dir: &Path) -> (Child, ClusterInfo) {
    let mut child = Command::new(SUPERVISOR)
        .args(["cluster", "up", "--watch-stdin", "--dir"])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("supervisor starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let info: ClusterInfo =
        serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("ready line {line:?}: {e}"));
    let names: Vec<&str> = info.component_pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok"
        ]
    );
    for (name, pid) in &info.component_pids {
        assert!(
            sluice_e2e::process::alive(*pid),
            "{name} ({pid}) is not running after start"
        );
    }
    (child, info)
}

fn assert_all_gone(info: &ClusterInfo, how: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left: Vec<_> = info
            .component_pids
            .iter()
            .filter(|(_, pid)| sluice_e2e::process::alive(*pid))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "after {how}, still running: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn closing_stdin_stops_every_component_and_removes_the_directory() {
    let dir = std::env::temp_dir().join(format!("sluice-lifecycle-stdin-{}", std::process::id()));
    let (mut child, info) = start(&dir);
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "supervisor exited with {status}");
    assert_all_gone(&info, "stdin closed");
    assert!(!dir.exists(), "{} was left behind", dir.display());
}

#[test]
fn cluster_down_stops_a_supervisor_started_by_another_process() {
    let dir = std::env::temp_dir().join(format!("sluice-lifecycle-down-{}", std::process::id()));
    let (mut child, info) = start(&dir);
    let out = Command::new(SUPERVISOR)
        .args(["cluster", "down", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cluster down: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    child.wait().unwrap();
    assert_all_gone(&info, "cluster down");
}

#[test]
fn killing_the_supervisor_with_sigkill_kills_every_component() {
    let dir = std::env::temp_dir().join(format!("sluice-lifecycle-kill-{}", std::process::id()));
    let (mut child, info) = start(&dir);
    child.kill().unwrap(); // SIGKILL: no handler runs, only the kernel's parent-death signal.
    child.wait().unwrap();
    assert_all_gone(&info, "SIGKILL of the supervisor");
    std::fs::remove_dir_all(&dir).ok();
}
