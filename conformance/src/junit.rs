//! Reading the e2e framework's JUnit report (`<report dir>/junit_01.xml`) into a summary:
//! passed, failed (with the failure text), skipped at run time (with the reason), and how
//! many specs the focus and skip expressions left out.

use std::fmt::Write as _;

use quick_xml::events::Event;
use quick_xml::Reader;
use serde::Serialize;

/// One spec that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failed {
    pub name: String,
    /// `failed`, `timedout`, `panicked`, `interrupted`, `aborted`.
    pub status: String,
    /// The first lines of the failure text (the report holds all of it).
    pub message: String,
}

/// A spec that was selected but skipped itself while running (e2eskipper: "Only supported
/// for providers [gce]" and the like).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: Vec<Failed>,
    pub skipped: Vec<Skipped>,
    /// Specs the focus/skip expressions filtered out (ginkgo lists them as skipped too).
    pub not_selected: usize,
    /// Suite setup and teardown nodes that failed ([SynchronizedBeforeSuite] ...): the specs
    /// did not run properly, so these count as failures.
    pub suite_failures: Vec<Failed>,
    /// Seconds, as the report says.
    pub duration_seconds: f64,
}

impl Summary {
    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.suite_failures.is_empty()
    }

    /// The human summary written to `summary.txt` and printed at the end.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "passed: {}, failed: {}, skipped: {}, not selected: {}, duration: {}",
            self.passed,
            self.failed.len() + self.suite_failures.len(),
            self.skipped.len(),
            self.not_selected,
            human_duration(self.duration_seconds)
        );
        for f in self.suite_failures.iter().chain(&self.failed) {
            let _ = writeln!(out, "FAILED ({}): {}", f.status, f.name);
            for line in f.message.lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        for s in &self.skipped {
            let _ = writeln!(out, "skipped: {} ({})", s.name, s.reason);
        }
        out
    }
}

/// `3725.4` -> `1h2m5s`.
pub fn human_duration(seconds: f64) -> String {
    let total = seconds.round() as u64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

/// How many lines of a failure's text the summary keeps.
const MESSAGE_LINES: usize = 6;

#[derive(Default)]
struct Case {
    name: String,
    status: String,
    skip_message: Option<String>,
    failure: String,
    in_failure: bool,
}

/// Parses ginkgo's JUnit XML (as the e2e framework writes it).
pub fn parse(xml: &str) -> Result<Summary, String> {
    let mut reader = Reader::from_str(xml);
    let mut summary = Summary::default();
    let mut case: Option<Case> = None;
    let mut saw_suite = false;
    loop {
        let event = reader.read_event().map_err(|e| {
            format!(
                "malformed JUnit XML at byte {}: {e}",
                reader.error_position()
            )
        })?;
        match event {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"testsuite" => {
                saw_suite = true;
                if let Some(t) = attr(&e, b"time")? {
                    summary.duration_seconds += t.parse::<f64>().unwrap_or(0.0);
                }
            }
            Event::Start(e) if e.name().as_ref() == b"testcase" => {
                case = Some(Case {
                    name: attr(&e, b"name")?.unwrap_or_default(),
                    status: attr(&e, b"status")?.unwrap_or_default(),
                    ..Case::default()
                });
            }
            Event::Empty(e) if e.name().as_ref() == b"testcase" => {
                let c = Case {
                    name: attr(&e, b"name")?.unwrap_or_default(),
                    status: attr(&e, b"status")?.unwrap_or_default(),
                    ..Case::default()
                };
                tally(&mut summary, c);
            }
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"skipped" => {
                if let Some(c) = case.as_mut() {
                    c.skip_message = Some(attr(&e, b"message")?.unwrap_or_default());
                }
            }
            Event::Start(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                if let Some(c) = case.as_mut() {
                    c.in_failure = true;
                    if let Some(m) = attr(&e, b"message")? {
                        c.failure.push_str(&m);
                    }
                }
            }
            Event::Empty(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                if let Some(c) = case.as_mut() {
                    if let Some(m) = attr(&e, b"message")? {
                        c.failure.push_str(&m);
                    }
                }
            }
            Event::End(e) if matches!(e.name().as_ref(), b"failure" | b"error") => {
                if let Some(c) = case.as_mut() {
                    c.in_failure = false;
                }
            }
            Event::Text(t) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_failure) {
                    let text = t
                        .decode()
                        .map_err(|e| format!("malformed JUnit XML text: {e}"))?;
                    let text = quick_xml::escape::unescape(&text)
                        .map_err(|e| format!("malformed JUnit XML text: {e}"))?;
                    c.failure.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(c) = case.as_mut().filter(|c| c.in_failure) {
                    c.failure.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                // Entities inside failure text (&#34;, &lt;, ...).
                if let Some(c) = case.as_mut().filter(|c| c.in_failure) {
                    let name = String::from_utf8_lossy(&r).into_owned();
                    let text = quick_xml::escape::unescape(&format!("&{name};"))
                        .map(|s| s.into_owned())
                        .unwrap_or_default();
                    c.failure.push_str(&text);
                }
            }
            Event::End(e) if e.name().as_ref() == b"testcase" => {
                if let Some(c) = case.take() {
                    tally(&mut summary, c);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_suite {
        return Err("no <testsuite> in the JUnit report".into());
    }
    Ok(summary)
}

fn attr(e: &quick_xml::events::BytesStart, name: &[u8]) -> Result<Option<String>, String> {
    for a in e.attributes() {
        let a = a.map_err(|e| format!("malformed JUnit XML attribute: {e}"))?;
        if a.key.as_ref() == name {
            return a
                .unescape_value()
                .map(|v| Some(v.into_owned()))
                .map_err(|e| format!("malformed JUnit XML attribute: {e}"));
        }
    }
    Ok(None)
}

/// Suite-level nodes ginkgo reports as test cases.
fn is_suite_node(name: &str) -> bool {
    [
        "[SynchronizedBeforeSuite]",
        "[SynchronizedAfterSuite]",
        "[BeforeSuite]",
        "[AfterSuite]",
        "[ReportBeforeSuite]",
        "[ReportAfterSuite]",
    ]
    .iter()
    .any(|p| name.starts_with(p))
}

fn short_message(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .take(MESSAGE_LINES)
        .collect::<Vec<_>>()
        .join("\n")
}

fn tally(summary: &mut Summary, c: Case) {
    // ginkgo prefixes the node type; every spec here is an It.
    let name = c.name.trim();
    let name = name.strip_prefix("[It] ").unwrap_or(name).to_string();
    match c.status.as_str() {
        "passed" => {
            if !is_suite_node(&name) {
                summary.passed += 1;
            }
        }
        "skipped" | "pending" => {
            // Filtered specs say just "skipped"; a spec that skipped itself says why.
            match c
                .skip_message
                .as_deref()
                .and_then(|m| m.strip_prefix("skipped - "))
            {
                Some(reason) if !is_suite_node(&name) => summary.skipped.push(Skipped {
                    name,
                    reason: reason.trim().to_string(),
                }),
                _ => summary.not_selected += 1,
            }
        }
        status => {
            let failed = Failed {
                name: name.clone(),
                status: if status.is_empty() {
                    "failed".into()
                } else {
                    status.into()
                },
                message: short_message(&c.failure),
            };
            if is_suite_node(&name) {
                summary.suite_failures.push(failed);
            } else {
                summary.failed.push(failed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from a real e2e report.
    const REPORT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
  <testsuites tests="7" disabled="0" errors="0" failures="1" time="301.5">
      <testsuite name="Kubernetes e2e suite" package="/" tests="7" skipped="3" disabled="0" errors="0" failures="1" time="301.5" timestamp="2026-01-01T10:00:00">
          <properties>
              <property name="SuiteSucceeded" value="false"></property>
          </properties>
          <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="12.1"></testcase>
          <testcase name="[It] [sig-network] DNS should provide DNS for the cluster  [Conformance]" classname="Kubernetes e2e suite" status="passed" time="20.4"></testcase>
          <testcase name="[sig-node] Pods should be submitted and removed [NodeConformance] [Conformance]" classname="Kubernetes e2e suite" status="passed" time="8.0"></testcase>
          <testcase name="[sig-apps] Daemon set [Serial] should rollback without unnecessary restarts [Conformance]" classname="Kubernetes e2e suite" status="skipped" time="0">
              <skipped message="skipped"></skipped>
          </testcase>
          <testcase name="[It] [sig-network] Services should have session affinity work for NodePort service [LinuxOnly] [Conformance]" classname="Kubernetes e2e suite" status="failed" time="180.2">
              <failure type="failed">[FAILED] service is not reachable within 2m0s timeout on endpoint 172.18.0.3:31234 over TCP protocol&#xA;In [It] at: k8s.io/kubernetes/test/e2e/network/service.go:4195 @ 01/01/26 10:03:00.000&#xA;&#xA;There were additional failures detected.</failure>
              <system-err>&gt; Enter [BeforeEach] ...</system-err>
          </testcase>
          <testcase name="[sig-storage] something needing gce" classname="Kubernetes e2e suite" status="skipped" time="0.5">
              <skipped message="skipped - Only supported for providers [gce gke] (not skeleton)"></skipped>
          </testcase>
          <testcase name="[sig-cli] filtered out" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
          <testcase name="[ReportAfterSuite] Kubernetes e2e JUnit report" classname="Kubernetes e2e suite" status="passed" time="0.01"></testcase>
      </testsuite>
  </testsuites>"#;

    #[test]
    fn counts_and_failures() {
        let s = parse(REPORT).unwrap();
        assert_eq!(s.passed, 2);
        assert_eq!(s.not_selected, 2);
        assert_eq!(
            s.skipped,
            vec![Skipped {
                name: "[sig-storage] something needing gce".into(),
                reason: "Only supported for providers [gce gke] (not skeleton)".into()
            }]
        );
        assert_eq!(s.failed.len(), 1);
        assert!(s.failed[0]
            .name
            .starts_with("[sig-network] Services should have session affinity"));
        assert!(
            s.failed[0]
                .message
                .starts_with("[FAILED] service is not reachable"),
            "{}",
            s.failed[0].message
        );
        assert!(s.failed[0].message.contains("service.go:4195"));
        assert!(!s.success());
        assert!((s.duration_seconds - 301.5).abs() < 0.01);
        let text = s.render();
        assert!(
            text.starts_with("passed: 2, failed: 1, skipped: 1, not selected: 2, duration: 5m2s\n")
        );
        assert!(
            text.contains("FAILED (failed): [sig-network] Services should have session affinity")
        );
    }

    #[test]
    fn suite_setup_failure_fails_the_run() {
        let xml = r#"<testsuites><testsuite name="s" time="5"><testcase name="[SynchronizedBeforeSuite]" status="failed" time="5"><failure type="failed">nodes not ready</failure></testcase><testcase name="x" status="skipped"><skipped message="skipped"/></testcase></testsuite></testsuites>"#;
        let s = parse(xml).unwrap();
        assert_eq!(s.passed, 0);
        assert_eq!(s.suite_failures.len(), 1);
        assert_eq!(s.suite_failures[0].message, "nodes not ready");
        assert!(!s.success());
    }

    #[test]
    fn all_passed_is_success_and_garbage_is_an_error() {
        let xml = r#"<testsuites><testsuite name="s" time="1"><testcase name="a" status="passed"/></testsuite></testsuites>"#;
        let s = parse(xml).unwrap();
        assert!(s.success());
        assert_eq!(s.passed, 1);
        assert!(parse("not xml at all").is_err());
        assert!(parse("<testsuites><testsuite").is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(4.4), "4s");
        assert_eq!(human_duration(301.5), "5m2s");
        assert_eq!(human_duration(3725.0), "1h2m5s");
    }
}
