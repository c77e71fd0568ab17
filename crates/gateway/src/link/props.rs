//! Start-up properties a node reports once per run (SPEC §5): host, OS, hardware, build,
//! directories, addresses, time zone and whether it runs in a container. Read from the system
//! (`/proc`, `/etc`), never from environment variables.

use std::net::SocketAddr;
use std::path::Path;

use protocol::link::StartupProperties;

/// The runtime version reported on the link.
pub const RUNTIME_VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "gateway".into())
}

/// Collects the properties; `started_at_ms` is the Unix time of the run's start.
pub fn collect(data_dir: &Path, bind: &[SocketAddr], started_at_ms: i64) -> StartupProperties {
    StartupProperties {
        host_name: host_name(),
        os: std::env::consts::OS.to_string(),
        arch: std::env::consts::ARCH.to_string(),
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory_bytes: memory_bytes().unwrap_or(0),
        runtime_version: RUNTIME_VERSION.to_string(),
        build: if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
        .to_string(),
        install_dir: std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.display().to_string()))
            .unwrap_or_default(),
        data_dir: std::fs::canonicalize(data_dir)
            .unwrap_or_else(|_| data_dir.to_path_buf())
            .display()
            .to_string(),
        bind_addresses: bind.iter().map(|a| a.to_string()).collect(),
        started_at_ms,
        time_zone: time_zone(),
        in_container: in_container(),
    }
}

fn memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn time_zone() -> String {
    if let Ok(zone) = std::fs::read_to_string("/etc/timezone") {
        let zone = zone.trim();
        if !zone.is_empty() {
            return zone.to_string();
        }
    }
    // /etc/localtime -> /usr/share/zoneinfo/Europe/Berlin
    if let Ok(target) = std::fs::read_link("/etc/localtime") {
        let target = target.display().to_string();
        if let Some((_, zone)) = target.split_once("zoneinfo/") {
            return zone.to_string();
        }
    }
    "UTC".into()
}

fn in_container() -> bool {
    if Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists() {
        return true;
    }
    std::fs::read_to_string("/proc/1/cgroup").is_ok_and(|cgroup| {
        ["docker", "kubepods", "containerd", "lxc", "libpod"]
            .iter()
            .any(|marker| cgroup.contains(marker))
    })
}
