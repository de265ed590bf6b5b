//! Making a container fit to run a Docker daemon of its own, one level down from wherever the
//! container runs (a Docker host, a pod of a Kubernetes cluster, a kindred node).
//!
//! Each adaptation checks first and is a no-op where it is not needed; what was found and done
//! is returned as notes (printed by the entrypoint) and as dockerd flags.

use std::path::Path;
use std::process::Command;

/// What [`prepare`] found and did.
#[derive(Debug, Default)]
pub struct Prepared {
    /// One line per finding or change, for the job's log.
    pub notes: Vec<String>,
    /// Problems the job may hit, each with its fix.
    pub warnings: Vec<String>,
    /// Flags for the nested dockerd.
    pub dockerd_args: Vec<String>,
}

/// Adapts the container (mounts, cgroups, iptables backend) and works out dockerd's flags.
pub fn prepare() -> Prepared {
    let mut p = Prepared::default();
    for path in ["/sys", "/proc/sys"] {
        make_writable(path, &mut p);
    }
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        cgroup_v2(&mut p);
    } else {
        cgroup_v1(&mut p);
    }
    iptables_backend(&mut p);
    mtu(&mut p);
    if !Path::new("/lib/modules").is_dir() {
        p.notes.push(
            "no /lib/modules: kernel modules cannot be loaded here; the host's loaded modules \
             (overlay, br_netfilter, nf_conntrack, ...) are used as they are"
                .into(),
        );
    }
    inotify_limits(&mut p);
    p
}

fn mount_options(path: &str) -> Option<String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    // The last mount on a path is the one in effect.
    mounts.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&path)).then(|| f.get(3).map(|o| o.to_string()))?
    })
}

fn is_read_only(path: &str) -> bool {
    mount_options(path).is_some_and(|o| o.split(',').any(|x| x == "ro"))
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Container runtimes mount /sys (and, in pods, /proc/sys) read-only without --privileged;
/// dockerd and the node containers write to both.
fn make_writable(path: &str, p: &mut Prepared) {
    if !is_read_only(path) {
        return;
    }
    let remounted = run("mount", &["-o", "remount,rw", path])
        .or_else(|_| run("mount", &["-o", "remount,bind,rw", path]));
    match remounted {
        Ok(_) => p
            .notes
            .push(format!("{path} was read-only: remounted read-write")),
        Err(e) => p.warnings.push(format!(
            "{path} is read-only and could not be remounted ({e}); give the container \
             CAP_SYS_ADMIN and unconfined seccomp/AppArmor (docs/ci-pods.md)"
        )),
    }
}

/// cgroup v2 does not allow processes in a cgroup that hands controllers to children: move
/// ours into a leaf, then delegate every controller (what the nested daemon's cgroups need).
fn cgroup_v2(p: &mut Prepared) {
    let root = Path::new("/sys/fs/cgroup");
    if is_read_only("/sys/fs/cgroup") {
        if let Err(e) = run("mount", &["-o", "remount,rw", "/sys/fs/cgroup"]) {
            p.warnings.push(format!(
                "/sys/fs/cgroup (v2) is read-only and could not be remounted ({e}); nested \
                 containers cannot get cgroups"
            ));
            return;
        }
    }
    let leaf = root.join("init");
    let _ = std::fs::create_dir_all(&leaf);
    let procs = std::fs::read_to_string(root.join("cgroup.procs")).unwrap_or_default();
    for pid in procs.lines() {
        let _ = std::fs::write(leaf.join("cgroup.procs"), pid);
    }
    let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    let enable: Vec<String> = controllers
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    match std::fs::write(root.join("cgroup.subtree_control"), enable.join(" ")) {
        Ok(()) => p.notes.push(format!(
            "cgroup v2: moved into /init, delegated {}",
            controllers.trim()
        )),
        Err(e) => p.warnings.push(format!(
            "cgroup v2: could not delegate controllers ({e}); nested containers may lack \
             memory or cpu limits"
        )),
    }
}

/// One `/proc/self/cgroup` line of a v1 hierarchy: (controllers, path).
fn v1_hierarchies(self_cgroup: &str) -> Vec<(String, String)> {
    self_cgroup
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, set, path) = (f.next()?, f.next()?, f.next()?);
            (!set.is_empty()).then(|| (set.to_string(), path.to_string()))
        })
        .collect()
}

/// The cgroup the nested daemon should put its containers under, when this container has no
/// cgroup namespace of its own (a pod on a cgroup v1 node): our own cgroup, so the pod's
/// resource limits cover them.
fn v1_cgroup_parent(hierarchies: &[(String, String)]) -> Option<String> {
    let own = hierarchies
        .iter()
        .find(|(set, _)| set.split(',').any(|c| c == "memory"))
        .or_else(|| hierarchies.iter().find(|(set, _)| set == "name=systemd"))?;
    (own.1 != "/").then(|| format!("{}/docker", own.1.trim_end_matches('/')))
}

/// Docker's and containerd's v1 hierarchies are read-only without --privileged and cannot be
/// remounted read-write: mount each one afresh (writable) in their place.
fn cgroup_v1(p: &mut Prepared) {
    let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let hierarchies = v1_hierarchies(&self_cgroup);
    if let Some(parent) = v1_cgroup_parent(&hierarchies) {
        p.notes.push(format!(
            "cgroup v1 without a cgroup namespace: nested containers go under {parent}"
        ));
        p.dockerd_args.push(format!("--cgroup-parent={parent}"));
    }
    let read_only = hierarchies.iter().any(|(set, _)| {
        let dir = match set.strip_prefix("name=") {
            Some(name) => name.to_string(),
            None => set.clone(),
        };
        is_read_only(&format!("/sys/fs/cgroup/{dir}"))
    });
    if !read_only {
        p.notes.push("cgroup v1: hierarchies are writable".into());
        return;
    }
    let remount = || -> Result<Vec<String>, String> {
        run("umount", &["-R", "/sys/fs/cgroup"])?;
        run(
            "mount",
            &["-t", "tmpfs", "-o", "mode=755", "cgroup", "/sys/fs/cgroup"],
        )?;
        let mut mounted = Vec::new();
        for (set, _) in &hierarchies {
            let (dir, opts) = match set.strip_prefix("name=") {
                Some(name) => (name.to_string(), format!("none,{set}")),
                None => (set.clone(), set.clone()),
            };
            let target = format!("/sys/fs/cgroup/{dir}");
            std::fs::create_dir_all(&target).map_err(|e| format!("{target}: {e}"))?;
            if run("mount", &["-t", "cgroup", "-o", &opts, "cgroup", &target]).is_err() {
                let _ = std::fs::remove_dir(&target);
                continue;
            }
            // Co-mounted controllers (cpu,cpuacct) are reachable by each name, as on a host.
            if set.contains(',') && !set.starts_with("name=") {
                for c in set.split(',') {
                    let _ = std::os::unix::fs::symlink(set, format!("/sys/fs/cgroup/{c}"));
                }
            }
            mounted.push(set.clone());
        }
        Ok(mounted)
    };
    match remount() {
        Ok(mounted) => p.notes.push(format!(
            "cgroup v1: read-only hierarchies mounted afresh: {}",
            mounted.join(" ")
        )),
        Err(e) => p.warnings.push(format!(
            "cgroup v1 hierarchies are read-only and could not be mounted afresh ({e}); give \
             the container CAP_SYS_ADMIN and unconfined seccomp/AppArmor (docs/ci-pods.md)"
        )),
    }
}

/// Rules in one iptables backend's tables, counted from its `-save` output.
fn rule_count(save_command: &str) -> Option<usize> {
    let out = run(save_command, &[]).ok()?;
    Some(out.lines().filter(|l| l.starts_with("-A ")).count())
}

/// Which iptables backend to use: the one already holding rules in this network namespace
/// (the outer runtime's, e.g. Docker's DNS rules), else nft if the kernel offers it.
pub fn choose_iptables_backend(
    legacy_rules: Option<usize>,
    nft_rules: Option<usize>,
) -> &'static str {
    match (legacy_rules, nft_rules) {
        (Some(l), n) if l > n.unwrap_or(0) => "legacy",
        (_, Some(_)) => "nft",
        _ => "legacy",
    }
}

/// Set to `legacy` or `nft` to choose the nested daemon's iptables backend by hand.
pub const IPTABLES_ENV: &str = "KINDRED_CI_IPTABLES";

fn iptables_backend(p: &mut Prepared) {
    let legacy = rule_count("iptables-legacy-save");
    let nft = rule_count("iptables-nft-save");
    let backend = match std::env::var(IPTABLES_ENV).as_deref() {
        Ok("legacy") => "legacy",
        Ok("nft") => "nft",
        Ok(other) if !other.is_empty() => {
            p.warnings.push(format!(
                "{IPTABLES_ENV}={other} is not understood (use legacy or nft); choosing by itself"
            ));
            choose_iptables_backend(legacy, nft)
        }
        _ => choose_iptables_backend(legacy, nft),
    };
    let mut set = Vec::new();
    for tool in ["iptables", "ip6tables"] {
        let path = format!("/usr/sbin/{tool}-{backend}");
        if Path::new(&path).exists() && run("update-alternatives", &["--set", tool, &path]).is_ok()
        {
            set.push(tool);
        }
    }
    p.notes.push(format!(
        "iptables: {backend} backend (rules found: legacy {}, nft {}){}",
        legacy.map_or("unavailable".into(), |n| n.to_string()),
        nft.map_or("unavailable".into(), |n| n.to_string()),
        if set.is_empty() {
            " - could not switch the alternatives".to_string()
        } else {
            String::new()
        }
    ));
}

/// The interface of the default route, from /proc/net/route.
fn default_route_interface(route_table: &str) -> Option<String> {
    route_table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"00000000") && f.get(7) == Some(&"00000000")).then(|| f[0].to_string())
    })
}

/// Packets of nested containers travel inside the outer network: the nested bridges must not
/// use a larger MTU than the interface they leave through (overlay networks often use 1450).
fn mtu(p: &mut Prepared) {
    let table = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
    let Some(iface) = default_route_interface(&table) else {
        p.notes
            .push("no default route: keeping Docker's default MTU".into());
        return;
    };
    let mtu: Option<u32> = std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match mtu {
        Some(m) if m < 1500 => {
            p.notes
                .push(format!("MTU {m} on {iface}: nested networks use {m}"));
            p.dockerd_args.push(format!("--mtu={m}"));
        }
        Some(m) => p.notes.push(format!("MTU {m} on {iface}")),
        None => {}
    }
}

/// Each node runs systemd, containerd and kubelet, all watching files: low inotify limits
/// (a host-wide setting) make them fail with "too many open files".
fn inotify_limits(p: &mut Prepared) {
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(format!("/proc/sys/fs/inotify/{name}"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    if let (Some(instances), Some(watches)) = (read("max_user_instances"), read("max_user_watches"))
    {
        if instances < 512 || watches < 524_288 {
            p.warnings.push(format!(
                "inotify limits are low (max_user_instances={instances}, \
                 max_user_watches={watches}); clusters of several nodes may fail with \"too many \
                 open files\". Raise them on the host: sysctl fs.inotify.max_user_instances=512 \
                 fs.inotify.max_user_watches=524288"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_existing_rules_then_prefers_nft() {
        assert_eq!(choose_iptables_backend(Some(5), Some(0)), "legacy");
        assert_eq!(choose_iptables_backend(Some(0), Some(3)), "nft");
        assert_eq!(choose_iptables_backend(Some(0), Some(0)), "nft");
        assert_eq!(choose_iptables_backend(Some(2), None), "legacy");
        assert_eq!(choose_iptables_backend(None, None), "legacy");
    }

    #[test]
    fn default_route_interface_is_read_from_the_route_table() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(default_route_interface(table).as_deref(), Some("eth0"));
        assert_eq!(default_route_interface("Iface\tDestination\n"), None);
    }

    #[test]
    fn pod_without_cgroup_namespace_nests_under_its_own_cgroup() {
        let pod = "12:memory:/kubepods/besteffort/pod1/abc\n\
                   11:cpu,cpuacct:/kubepods/besteffort/pod1/abc\n\
                   1:name=systemd:/kubepods/besteffort/pod1/abc\n\
                   0::/\n";
        let h = v1_hierarchies(pod);
        assert_eq!(h.len(), 3);
        assert_eq!(
            v1_cgroup_parent(&h).as_deref(),
            Some("/kubepods/besteffort/pod1/abc/docker")
        );
        // A private cgroup namespace (Docker's --cgroupns=private) sees itself at the root.
        let container = "12:memory:/\n1:name=systemd:/\n0::/\n";
        assert_eq!(v1_cgroup_parent(&v1_hierarchies(container)), None);
    }
}
