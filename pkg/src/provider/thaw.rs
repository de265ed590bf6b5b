//! Thawing a node container's frozen cgroups, so that a kill of the node can finish.
//!
//! On cgroup v1 hosts runc (inside the node, systemd cgroup driver) freezes a pod container's
//! cgroup while it changes the container's device rules, and thaws it after. A runc killed in
//! between (the node stopped or deleted while kubelet was starting pods) leaves the cgroup
//! frozen for good. Frozen tasks cannot die, and the node's init, which must outlive every
//! task of its PID namespace, then waits in the kernel forever: Docker reports "did not
//! receive an exit event" and the container stays. Writing THAWED (cgroup v1) or 0
//! (`cgroup.freeze`, v2) below the container's own cgroup lets the pending kill go through.

use std::path::{Path, PathBuf};

/// The cgroup directories (the container's own and every one below it) that are frozen,
/// read from the container init's `/proc/<pid>/cgroup` and the host's /sys/fs/cgroup.
pub fn frozen_below(pid: i64, cgroup_root: &Path) -> Vec<PathBuf> {
    match std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        Ok(text) => frozen_in(&text, cgroup_root),
        Err(_) => Vec::new(),
    }
}

/// The frozen cgroups at and below those `proc_cgroup` names.
fn frozen_in(proc_cgroup: &str, cgroup_root: &Path) -> Vec<PathBuf> {
    let mut frozen = Vec::new();
    for (dir, file) in container_cgroups(proc_cgroup, cgroup_root) {
        walk(&dir, &mut |d| {
            if is_frozen(&d.join(file)) {
                frozen.push(d.join(file));
            }
        });
    }
    frozen
}

/// Thaws each of `files` (as [`frozen_below`] returned them); returns how many it could.
pub fn thaw(files: &[PathBuf]) -> usize {
    files
        .iter()
        .filter(|f| {
            let value = if f.ends_with("freezer.state") {
                "THAWED"
            } else {
                "0"
            };
            std::fs::write(f, value).is_ok()
        })
        .count()
}

/// From `/proc/<pid>/cgroup`: the freezer directory of cgroup v1 (`N:freezer:/path`) or the
/// unified directory of cgroup v2 (`0::/path`), with the file that freezes it.
fn container_cgroups(proc_cgroup: &str, root: &Path) -> Vec<(PathBuf, &'static str)> {
    proc_cgroup
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let path = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "freezer") {
                Some((root.join("freezer").join(path), "freezer.state"))
            } else if controllers.is_empty() && root.join("cgroup.controllers").exists() {
                Some((root.join(path), "cgroup.freeze"))
            } else {
                None
            }
        })
        .collect()
}

fn is_frozen(file: &Path) -> bool {
    let value = std::fs::read_to_string(file).unwrap_or_default();
    matches!(value.trim(), "FROZEN" | "FREEZING" | "1")
}

/// `dir` and every directory below it.
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    if !dir.is_dir() {
        return;
    }
    visit(dir);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&entry.path(), visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_freezer_and_v2_unified_paths_come_from_proc_cgroup() {
        let root = tempfile::tempdir().unwrap();
        let v1 = "6:freezer:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n";
        assert_eq!(
            container_cgroups(v1, root.path()),
            vec![(root.path().join("freezer/docker/abc"), "freezer.state")]
        );
        // The unified line counts only on a cgroup v2 host (its root has cgroup.controllers).
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(
            container_cgroups("0::/system.slice/docker-abc.scope\n", root.path()),
            vec![(
                root.path().join("system.slice/docker-abc.scope"),
                "cgroup.freeze"
            )]
        );
    }

    #[test]
    fn frozen_cgroups_below_the_container_are_found_and_thawed() {
        let root = tempfile::tempdir().unwrap();
        let node = root.path().join("freezer/docker/abc");
        let pod = node.join("kubepods.slice/pod1/cri-containerd-1.scope");
        let other = node.join("kubepods.slice/pod2");
        for (dir, state) in [(&node, "THAWED"), (&pod, "FROZEN"), (&other, "THAWED")] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("freezer.state"), state).unwrap();
        }
        let frozen = frozen_in("6:freezer:/docker/abc\n", root.path());
        assert_eq!(frozen, vec![pod.join("freezer.state")]);
        assert_eq!(thaw(&frozen), 1);
        assert_eq!(
            std::fs::read_to_string(pod.join("freezer.state")).unwrap(),
            "THAWED"
        );
        // A container that is gone has nothing to thaw.
        assert!(frozen_below(i64::from(i32::MAX), root.path()).is_empty());
    }
}
