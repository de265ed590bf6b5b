//! Random secrets from the operating system's generator (getrandom): create tokens, kubeadm's
//! bootstrap token and certificate key.

/// The OS could not give random bytes (no /dev/urandom or getrandom(2), e.g. in a sandbox).
#[derive(Debug, thiserror::Error)]
#[error("cannot read random bytes from the operating system ({0}); kindred needs getrandom(2) or /dev/urandom")]
pub struct RandomError(#[source] getrandom::Error);

/// `bytes` random bytes, hex-encoded.
pub fn hex(bytes: usize) -> Result<String, RandomError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(RandomError)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// A kubeadm bootstrap token, `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn bootstrap_token() -> Result<String, RandomError> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 22];
    getrandom::fill(&mut bytes).map_err(RandomError)?;
    let chars: String = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Ok(format!("{}.{}", &chars[..6], &chars[6..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_tokens_have_kubeadms_format() {
        let t = bootstrap_token().unwrap();
        let (id, secret) = t.split_once('.').unwrap();
        assert_eq!((id.len(), secret.len()), (6, 16));
        assert!(t
            .chars()
            .all(|c| c == '.' || c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(t, bootstrap_token().unwrap());
    }

    #[test]
    fn hex_has_two_digits_per_byte_and_differs() {
        let h = hex(8).unwrap();
        assert_eq!(h.len(), 16);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(h, hex(8).unwrap());
    }
}
