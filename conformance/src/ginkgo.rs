//! Which specs run, and the ginkgo command line that runs them: the focus (`\[Conformance\]`
//! by default), the skips (each default one with the reason it cannot pass on a kindred
//! cluster, or must be asked for), and the e2e framework's flags for a kindred cluster.

use std::path::PathBuf;

/// The conformance suite.
pub const DEFAULT_FOCUS: &str = r"\[Conformance\]";
/// kindred nodes run containerd at its default socket.
pub const CONTAINER_RUNTIME_ENDPOINT: &str = "unix:///run/containerd/containerd.sock";
/// ginkgo's own default (1h) is shorter than a full serial conformance run.
pub const SUITE_TIMEOUT: &str = "24h";

/// A skip expression and why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub pattern: String,
    pub reason: String,
}

impl Skip {
    fn new(pattern: &str, reason: &str) -> Skip {
        Skip {
            pattern: pattern.into(),
            reason: reason.into(),
        }
    }
}

/// What the user asked to run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// Replaces [`DEFAULT_FOCUS`].
    pub focus: Option<String>,
    /// Added to the default skips.
    pub skip: Vec<String>,
    /// Run `[Serial]` specs too (ginkgo runs them one at a time, after the parallel ones).
    pub include_serial: bool,
    pub include_disruptive: bool,
    pub include_flaky: bool,
    /// Drop every default skip (the user's own `skip` still applies).
    pub no_default_skips: bool,
}

/// The skips that apply by default, each with its reason.
pub fn default_skips(sel: &Selection) -> Vec<Skip> {
    if sel.no_default_skips {
        return vec![];
    }
    let mut skips = Vec::new();
    if !sel.include_disruptive {
        skips.push(Skip::new(
            r"\[Disruptive\]",
            "restarts or breaks nodes and system components; run it on a cluster you can throw away (--include-disruptive)",
        ));
    }
    if !sel.include_flaky {
        skips.push(Skip::new(
            r"\[Flaky\]",
            "marked flaky upstream (--include-flaky)",
        ));
    }
    if !sel.include_serial {
        skips.push(Skip::new(
            r"\[Serial\]",
            "must have the cluster to itself; ginkgo runs these one at a time after the parallel specs (--include-serial)",
        ));
    }
    skips.push(Skip::new(
        r"\[Feature:[^\]]+\]|\[Alpha\]|\[Beta\]",
        "needs an optional feature or a non-GA API the cluster is not set up for (the e2e framework's own default skip); focus on it with --focus and --no-default-skips",
    ));
    skips
}

/// The focus expression of a run.
pub fn focus(sel: &Selection) -> String {
    sel.focus.clone().unwrap_or_else(|| DEFAULT_FOCUS.into())
}

/// Every skip expression, the user's after the defaults, as one alternation for ginkgo.
pub fn skip_regex(skips: &[Skip], user: &[String]) -> String {
    skips
        .iter()
        .map(|s| s.pattern.as_str())
        .chain(user.iter().map(String::as_str))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("|")
}

/// Everything one ginkgo run needs.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub ginkgo: PathBuf,
    pub e2e_test: PathBuf,
    /// A kubeconfig for the cluster, written into the artifacts directory.
    pub kubeconfig: PathBuf,
    /// kubectl of the cluster's version (the kubectl specs run it).
    pub kubectl: PathBuf,
    /// Report directory: junit_01.xml and the e2e framework's other reports.
    pub artifacts: PathBuf,
    /// Schedulable nodes (the e2e framework waits for that many and spreads pods over them).
    pub num_nodes: usize,
    /// ginkgo processes.
    pub parallel: u32,
    pub focus: String,
    pub skip: String,
}

impl Invocation {
    /// `ginkgo <ginkgo flags> e2e.test -- <e2e flags>`, as Kubernetes' hack/ginkgo-e2e.sh and
    /// kind's e2e-k8s.sh run it.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            format!("--nodes={}", self.parallel.max(1)),
            format!("--focus={}", self.focus),
        ];
        if !self.skip.is_empty() {
            args.push(format!("--skip={}", self.skip));
        }
        args.extend([
            format!("--timeout={SUITE_TIMEOUT}"),
            // Filtered specs are thousands of "S"; only what runs is worth printing.
            "--silence-skips".to_string(),
            "--no-color".to_string(),
            self.e2e_test.display().to_string(),
            "--".to_string(),
            format!("--kubeconfig={}", self.kubeconfig.display()),
            // No cloud: the framework's generic provider.
            "--provider=skeleton".to_string(),
            format!("--num-nodes={}", self.num_nodes),
            format!("--report-dir={}", self.artifacts.display()),
            format!("--container-runtime-endpoint={CONTAINER_RUNTIME_ENDPOINT}"),
            format!("--kubectl-path={}", self.kubectl.display()),
            // Node logs are `kindred export logs`' job; the framework would ssh for them.
            "--disable-log-dump=true".to_string(),
        ]);
        args
    }

    /// The command as a user could retype it.
    pub fn display(&self) -> String {
        std::iter::once(self.ginkgo.display().to_string())
            .chain(self.args().into_iter().map(|a| {
                if a.contains(['|', ' ', '\\', '[', '(', '$']) {
                    format!("'{a}'")
                } else {
                    a
                }
            }))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            ginkgo: "/c/ginkgo".into(),
            e2e_test: "/c/e2e.test".into(),
            kubeconfig: "/a/kubeconfig".into(),
            kubectl: "/c/kubectl".into(),
            artifacts: "/a".into(),
            num_nodes: 2,
            parallel: 4,
            focus: DEFAULT_FOCUS.into(),
            skip: r"\[Serial\]".into(),
        }
    }

    #[test]
    fn ginkgo_flags_come_before_the_binary_and_e2e_flags_after() {
        let args = invocation().args();
        let bin = args.iter().position(|a| a == "/c/e2e.test").unwrap();
        assert_eq!(args[bin + 1], "--");
        let (ginkgo, e2e) = (&args[..bin], &args[bin + 2..]);
        for want in [
            "--nodes=4",
            r"--focus=\[Conformance\]",
            r"--skip=\[Serial\]",
            "--timeout=24h",
        ] {
            assert!(ginkgo.contains(&want.to_string()), "{want} in {ginkgo:?}");
        }
        for want in [
            "--kubeconfig=/a/kubeconfig",
            "--provider=skeleton",
            "--num-nodes=2",
            "--report-dir=/a",
            "--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
            "--kubectl-path=/c/kubectl",
        ] {
            assert!(e2e.contains(&want.to_string()), "{want} in {e2e:?}");
        }
    }

    #[test]
    fn no_skip_flag_without_skips_and_parallel_at_least_one() {
        let inv = Invocation {
            skip: String::new(),
            parallel: 0,
            ..invocation()
        };
        let args = inv.args();
        assert!(!args.iter().any(|a| a.starts_with("--skip")));
        assert!(args.contains(&"--nodes=1".to_string()));
        assert!(inv.display().contains(r"'--focus=\[Conformance\]'"));
    }

    #[test]
    fn default_skips_have_reasons_and_follow_the_switches() {
        let sel = Selection::default();
        let skips = default_skips(&sel);
        assert!(skips.iter().all(|s| !s.reason.is_empty()));
        let patterns: Vec<&str> = skips.iter().map(|s| s.pattern.as_str()).collect();
        for p in [r"\[Disruptive\]", r"\[Flaky\]", r"\[Serial\]"] {
            assert!(patterns.contains(&p), "{p} in {patterns:?}");
        }
        let serial = default_skips(&Selection {
            include_serial: true,
            include_disruptive: true,
            ..Selection::default()
        });
        assert!(!serial.iter().any(|s| s.pattern.contains("Serial")));
        assert!(!serial.iter().any(|s| s.pattern.contains("Disruptive")));
        assert!(serial.iter().any(|s| s.pattern.contains("Flaky")));
        assert!(default_skips(&Selection {
            no_default_skips: true,
            ..Selection::default()
        })
        .is_empty());
    }

    #[test]
    fn skips_join_defaults_then_user() {
        let skips = vec![Skip::new("a", "r"), Skip::new(r"\[b\]", "r")];
        assert_eq!(
            skip_regex(&skips, &["c".into(), String::new()]),
            r"a|\[b\]|c"
        );
        assert_eq!(skip_regex(&[], &[]), "");
        assert_eq!(focus(&Selection::default()), DEFAULT_FOCUS);
        assert_eq!(
            focus(&Selection {
                focus: Some("DNS".into()),
                ..Selection::default()
            }),
            "DNS"
        );
    }
}
