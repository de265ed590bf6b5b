//! Kubernetes' name syntaxes: DNS subdomains (cluster names, label prefixes) and label names.

/// Lowercase DNS labels joined by dots, each starting and ending with a letter or digit.
pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

fn is_dns_label(s: &str) -> bool {
    s.len() <= 63
        && starts_and_ends_alphanumeric(s)
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// `name` or `prefix/name`, the prefix a DNS subdomain.
pub(super) fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// Up to 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
/// Label values have the same form (or are empty).
pub(super) fn is_label_name(s: &str) -> bool {
    s.len() <= 63
        && starts_and_ends_alphanumeric(s)
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn starts_and_ends_alphanumeric(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_subdomains() {
        for ok in ["a", "kindred", "k-8", "a.b", "0x"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        for bad in ["", "A", "a_b", "-a", "a-", "a..b", ".a", "a.", "a.-b", "ä"] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys_and_names() {
        for ok in [
            "tier",
            "Tier_1",
            "a.b-c",
            "example.com/tier",
            "node.kubernetes.io/x",
        ] {
            assert!(is_label_key(ok), "{ok}");
        }
        let long = "a".repeat(64);
        for bad in [
            "",
            "/x",
            "Example.com/x",
            "a/b/c",
            "x/",
            "-x",
            "a b",
            long.as_str(),
        ] {
            assert!(!is_label_key(bad), "{bad}");
        }
    }
}
