//! How node containers get the powers systemd, containerd and kubelet need.
//!
//! `--privileged` is the simple answer, but it fails on hosts whose capability bounding set is
//! smaller than the full set (CI pods, nested containers, these build machines): runc cannot
//! grant what it does not hold. The restricted profile asks only for the capabilities the host
//! process actually has, and opens up the rest piecewise (seccomp, AppArmor, /sys, devices).

use bollard::models::{HostConfig, HostConfigCgroupnsModeEnum};

/// `KINDRED_NODE_SECURITY` holds a value kindred does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "KINDRED_NODE_SECURITY={value} is not understood; use `privileged` (the default, falls back \
     to restricted when refused) or `restricted`"
)]
pub struct UnknownNodeSecurity {
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeSecurity {
    /// `--privileged`.
    Privileged,
    /// Every capability in the host's bounding set, unconfined seccomp/AppArmor/systempaths,
    /// all devices allowed by the device cgroup.
    Restricted,
}

impl NodeSecurity {
    pub fn name(self) -> &'static str {
        match self {
            NodeSecurity::Privileged => "privileged",
            NodeSecurity::Restricted => "restricted (no --privileged)",
        }
    }

    /// The profile to start nodes with: `--privileged` (falling back to restricted where the
    /// daemon refuses it) unless `KINDRED_NODE_SECURITY=restricted` asks for the restricted
    /// profile outright, e.g. to test it on a host where --privileged works.
    pub fn from_env() -> Result<NodeSecurity, UnknownNodeSecurity> {
        match std::env::var("KINDRED_NODE_SECURITY")
            .unwrap_or_default()
            .as_str()
        {
            "" | "auto" | "privileged" => Ok(NodeSecurity::Privileged),
            "restricted" => Ok(NodeSecurity::Restricted),
            other => Err(UnknownNodeSecurity {
                value: other.to_string(),
            }),
        }
    }

    /// Applies this profile to a container's host config. Both profiles use a private cgroup
    /// namespace so systemd inside sees its own cgroup root.
    pub fn apply(self, host: &mut HostConfig) {
        host.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::PRIVATE);
        let opts = vec![
            "seccomp=unconfined".to_string(),
            "apparmor=unconfined".to_string(),
        ];
        match self {
            NodeSecurity::Privileged => host.privileged = Some(true),
            NodeSecurity::Restricted => {
                host.privileged = Some(false);
                host.cap_add = Some(host_bounding_caps());
                // What `docker run --security-opt systempaths=unconfined` means in the API:
                // nothing under /proc or /sys is masked or read-only.
                host.masked_paths = Some(Vec::new());
                host.readonly_paths = Some(Vec::new());
                host.device_cgroup_rules = Some(vec!["a *:* rwm".to_string()]);
            }
        }
        host.security_opt = Some(opts);
    }
}

/// Linux capability names by number, up to CAP_AUDIT_READ (37): the ones every Docker release
/// since 20.10 understands. Newer ones (perfmon, bpf, checkpoint_restore) are left out because
/// older daemons reject them by name and nodes do not need them.
const CAPS: [&str; 38] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
];

/// The capabilities in this process's bounding set, as Docker names them. kindred talks to a
/// daemon on the same host (or in the same pod), whose bounding set is the same as ours.
pub fn host_bounding_caps() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    caps_from_status(&status)
}

fn caps_from_status(status: &str) -> Vec<String> {
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        // Unknown: ask for everything and let the fallback logic report the failure.
        .unwrap_or(u64::MAX);
    CAPS.iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Whether a container start error means the daemon cannot grant `--privileged` here.
pub(crate) fn is_privilege_refusal(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("unable to apply caps")
        || (m.contains("operation not permitted") && m.contains("cap"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounding_set_without_sys_resource() {
        // The bounding set seen on the build machines: bit 24 (SYS_RESOURCE) missing.
        let caps = caps_from_status("Name:\tx\nCapBnd:\t000001fffeffffff\n");
        assert!(!caps.contains(&"SYS_RESOURCE".to_string()));
        assert!(caps.contains(&"SYS_ADMIN".to_string()));
        assert!(caps.contains(&"AUDIT_READ".to_string()));
        assert_eq!(caps.len(), 37);
    }

    #[test]
    fn restricted_profile_never_sets_privileged() {
        let mut host = HostConfig::default();
        NodeSecurity::Restricted.apply(&mut host);
        assert_eq!(host.privileged, Some(false));
        assert_eq!(host.masked_paths, Some(vec![]));
        assert_eq!(host.readonly_paths, Some(vec![]));
        assert!(host
            .security_opt
            .unwrap()
            .contains(&"seccomp=unconfined".to_string()));
        assert_eq!(host.device_cgroup_rules.unwrap(), vec!["a *:* rwm"]);
    }

    #[test]
    fn profile_can_be_forced_from_the_environment() {
        // Only this test touches the variable.
        std::env::set_var("KINDRED_NODE_SECURITY", "restricted");
        assert_eq!(NodeSecurity::from_env(), Ok(NodeSecurity::Restricted));
        std::env::set_var("KINDRED_NODE_SECURITY", "bogus");
        assert!(NodeSecurity::from_env()
            .unwrap_err()
            .to_string()
            .contains("`restricted`"));
        std::env::remove_var("KINDRED_NODE_SECURITY");
        assert_eq!(NodeSecurity::from_env(), Ok(NodeSecurity::Privileged));
    }

    #[test]
    fn recognises_the_caps_refusal() {
        assert!(is_privilege_refusal(
            "OCI runtime create failed: runc create failed: unable to start container process: unable to apply caps: operation not permitted"
        ));
        assert!(!is_privilege_refusal("No such image: kindred/node:v1"));
    }
}
