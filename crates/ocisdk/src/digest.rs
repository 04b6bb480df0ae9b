//! Content digests (`algorithm:hex`) and the streaming hasher that proves them.
//!
//! Implements the digest grammar of the OCI image spec
//! (<https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests>) for the two
//! registered algorithms, `sha256` and `sha512`.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A digest algorithm registered by the OCI image spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, 64 lower-case hex characters.
    Sha256,
    /// SHA-512, 128 lower-case hex characters.
    Sha512,
}

impl Algorithm {
    /// The name as written before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// How many hex characters an encoded digest of this algorithm has.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `:` between algorithm and hex.
    #[error("invalid digest \"{0}\": expected ALGORITHM:HEX, e.g. sha256:<64 hex characters>")]
    MissingColon(String),
    /// An algorithm other than sha256 or sha512.
    #[error("invalid digest \"{input}\": unsupported algorithm \"{algorithm}\" (sha256 and sha512 are supported)")]
    UnsupportedAlgorithm {
        /// The whole input.
        input: String,
        /// The algorithm part.
        algorithm: String,
    },
    /// Wrong number of hex characters for the algorithm.
    #[error(
        "invalid digest \"{input}\": {algorithm} needs {expected} hex characters, got {actual}"
    )]
    BadLength {
        /// The whole input.
        input: String,
        /// The algorithm.
        algorithm: Algorithm,
        /// Hex characters required.
        expected: usize,
        /// Hex characters given.
        actual: usize,
    },
    /// A character that is not lower-case hex.
    #[error("invalid digest \"{0}\": the encoded part must be lower-case hex")]
    NotHex(String),
}

/// A validated content digest such as `sha256:e3b0…b855`.
///
/// ```
/// use ocisdk::Digest;
/// let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".parse().unwrap();
/// assert_eq!(d.algorithm().as_str(), "sha256");
/// assert_eq!(Digest::of_bytes(b""), d);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    // Boxed: a digest sits in many error variants, and a smaller one keeps `Result`s small.
    hex: Box<str>,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Digest, DigestError> {
        let (algo, hex) = input
            .split_once(':')
            .ok_or_else(|| DigestError::MissingColon(input.to_string()))?;
        let algorithm = match algo {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm {
                    input: input.to_string(),
                    algorithm: other.to_string(),
                })
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::BadLength {
                input: input.to_string(),
                algorithm,
                expected: algorithm.hex_len(),
                actual: hex.len(),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::NotHex(input.to_string()));
        }
        Ok(Digest {
            algorithm,
            hex: hex.into(),
        })
    }

    /// The SHA-256 digest of `bytes`.
    pub fn of_bytes(bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(bytes);
        hasher.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lower-case hex encoding, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An incremental hasher for one algorithm.
#[derive(Clone)]
pub struct Hasher {
    state: HasherState,
}

#[derive(Clone)]
enum HasherState {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        let state = match algorithm {
            Algorithm::Sha256 => HasherState::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => HasherState::Sha512(sha2::Sha512::new()),
        };
        Hasher { state }
    }

    /// The algorithm this hasher computes.
    pub fn algorithm(&self) -> Algorithm {
        match self.state {
            HasherState::Sha256(_) => Algorithm::Sha256,
            HasherState::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.state {
            HasherState::Sha256(h) => h.update(bytes),
            HasherState::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.state {
            HasherState::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize()).into()),
            HasherState::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize()).into()),
        };
        Digest { algorithm, hex }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_digests() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        let long = format!("sha512:{}", "ab".repeat(64));
        assert_eq!(Digest::parse(&long).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_invalid_digests() {
        type Check = fn(&DigestError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("sha256", |e| matches!(e, DigestError::MissingColon(_))),
            ("md5:abc", |e| {
                matches!(e, DigestError::UnsupportedAlgorithm { .. })
            }),
            ("sha256:abc", |e| {
                matches!(e, DigestError::BadLength { actual: 3, .. })
            }),
            (
                &EMPTY_SHA256.to_uppercase().replace("SHA256", "sha256"),
                |e| matches!(e, DigestError::NotHex(_)),
            ),
            (
                "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                |e| matches!(e, DigestError::BadLength { expected: 128, .. }),
            ),
        ];
        for (input, check) in cases {
            let err = Digest::parse(input).unwrap_err();
            assert!(check(&err), "{input}: unexpected {err:?}");
            assert!(
                err.to_string().contains(input),
                "{err} should quote the input"
            );
        }
    }

    #[test]
    fn hashes_known_vectors() {
        assert_eq!(Digest::of_bytes(b"").to_string(), EMPTY_SHA256);
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(
            h.finish().hex(),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
             2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
        );
    }
}
