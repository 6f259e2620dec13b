//! Web3 Secret Storage (V3) keystores: the file's layout, and the KDFs
//! (scrypt, PBKDF2) with the bounds that keep a hostile file from costing
//! more than geth's own parameters would.

use serde::Deserialize;

use super::*;

// ---------------------------------------------------------------------------
// Web3 Secret Storage (V3)
// ---------------------------------------------------------------------------

pub(super) type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

#[derive(Deserialize)]
pub(super) struct KeystoreFile {
    pub(super) version: u64,
    // geth writes `crypto`; some older tools (MyEtherWallet, keythereum) `Crypto`.
    #[serde(alias = "Crypto")]
    pub(super) crypto: CryptoSection,
}

#[derive(Deserialize)]
pub(super) struct CryptoSection {
    pub(super) cipher: String,
    pub(super) cipherparams: CipherParams,
    pub(super) ciphertext: String,
    pub(super) kdf: String,
    pub(super) kdfparams: serde_json::Value,
    pub(super) mac: String,
}

#[derive(Deserialize)]
pub(super) struct CipherParams {
    pub(super) iv: String,
}

#[derive(Deserialize)]
pub(super) struct ScryptParams {
    pub(super) dklen: u64,
    pub(super) n: u64,
    pub(super) r: u64,
    pub(super) p: u64,
    pub(super) salt: String,
}

#[derive(Deserialize)]
pub(super) struct Pbkdf2Params {
    pub(super) dklen: u64,
    pub(super) c: u64,
    pub(super) prf: String,
    pub(super) salt: String,
}

/// A KDF whose parameters have passed the bounds.
pub(super) enum Kdf {
    Scrypt { params: scrypt::Params, salt: Vec<u8> },
    Pbkdf2 { rounds: u32, salt: Vec<u8> },
}

impl Kdf {
    pub(super) fn from_json(name: &str, params: serde_json::Value) -> Result<Kdf, KeyError> {
        let format = |e: serde_json::Error| KeyError::KeystoreFormat(format!("kdfparams: {}", describe(&e)));
        match name {
            "scrypt" => {
                let p: ScryptParams = serde_json::from_value(params).map_err(format)?;
                check_dklen(p.dklen)?;
                let bounds = |what: String| {
                    KeyError::KdfParams(format!(
                        "{what}; accepted: n a power of two up to 2^{MAX_SCRYPT_LOG_N}, \
                         128·r·(n+p) bytes up to {} MiB, n·r·p up to 2^24 (geth's standard is n=2^18 r=8 p=1)",
                        MAX_SCRYPT_MEMORY >> 20
                    ))
                };
                if p.n < 2 || !p.n.is_power_of_two() {
                    return Err(bounds(format!("scrypt n = {} is not a power of two ≥ 2", p.n)));
                }
                let log_n = p.n.trailing_zeros();
                if log_n > MAX_SCRYPT_LOG_N {
                    return Err(bounds(format!("scrypt n = 2^{log_n} is too large")));
                }
                if p.r == 0 || p.p == 0 {
                    return Err(bounds("scrypt r and p must be at least 1".to_owned()));
                }
                // V holds n blocks and B p blocks, each 128·r bytes.
                let memory =
                    p.n.checked_add(p.p)
                        .and_then(|blocks| blocks.checked_mul(p.r))
                        .and_then(|blocks| blocks.checked_mul(128));
                if memory.is_none_or(|m| m > MAX_SCRYPT_MEMORY) {
                    return Err(bounds(format!(
                        "scrypt n = 2^{log_n}, r = {}, p = {} needs more than {} MiB",
                        p.r,
                        p.p,
                        MAX_SCRYPT_MEMORY >> 20
                    )));
                }
                let work = p.n.checked_mul(p.r).and_then(|nr| nr.checked_mul(p.p));
                if work.is_none_or(|w| w > MAX_SCRYPT_WORK) {
                    return Err(bounds(format!(
                        "scrypt n = 2^{log_n}, r = {}, p = {} is too much work",
                        p.r, p.p
                    )));
                }
                // Within the bounds above r and p fit in u32 and log_n in u8.
                let (Ok(log_n), Ok(r), Ok(pp)) = (u8::try_from(log_n), u32::try_from(p.r), u32::try_from(p.p)) else {
                    return Err(bounds("scrypt parameters out of range".to_owned()));
                };
                let params = scrypt::Params::new(log_n, r, pp)
                    .map_err(|_| bounds("scrypt parameters out of range".to_owned()))?;
                Ok(Kdf::Scrypt {
                    params,
                    salt: decode_salt(&p.salt)?,
                })
            }
            "pbkdf2" => {
                let p: Pbkdf2Params = serde_json::from_value(params).map_err(format)?;
                check_dklen(p.dklen)?;
                if p.prf != "hmac-sha256" {
                    return Err(KeyError::UnsupportedPrf(clip(&p.prf)));
                }
                let rounds = match u32::try_from(p.c) {
                    Ok(rounds) if rounds >= 1 && p.c <= MAX_PBKDF2_ROUNDS => rounds,
                    _ => {
                        return Err(KeyError::KdfParams(format!(
                            "pbkdf2 c = {} is out of range; accepted: 1 to 2^23 \
                             (geth writes 262144)",
                            p.c
                        )));
                    }
                };
                Ok(Kdf::Pbkdf2 {
                    rounds,
                    salt: decode_salt(&p.salt)?,
                })
            }
            other => Err(KeyError::UnsupportedKdf(clip(&other))),
        }
    }

    pub(super) fn derive(&self, password: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
        let mut derived = Zeroizing::new([0u8; 32]);
        match self {
            Kdf::Scrypt { params, salt } => {
                scrypt::scrypt(password, salt, params, derived.as_mut_slice())
                    .map_err(|_| KeyError::KdfParams("scrypt refused the output length".to_owned()))?;
            }
            Kdf::Pbkdf2 { rounds, salt } => {
                pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, *rounds, derived.as_mut_slice());
            }
        }
        Ok(derived)
    }
}

/// The keystore's JSON, or an error that says where and what was wrong
/// without quoting the file: serde_json's own messages quote wrong-typed
/// values (`invalid type: string "0x4c08…"`), and a file given as a keystore
/// may hold a key in clear.
pub(super) fn parse(json: &[u8]) -> Result<KeystoreFile, KeyError> {
    serde_json::from_slice(json).map_err(|e| {
        let hint = if json.trim_ascii_start().starts_with(b"\"") {
            "; it holds a JSON string, not a keystore object: for a hex key use auth.private_key_file"
        } else {
            ""
        };
        KeyError::KeystoreFormat(format!("{}{hint}", describe(&e)))
    })
}

/// What a serde_json error says, without any value from the input: its
/// kind, the field it names (`missing field `crypto``), what was expected,
/// and where.
pub(super) fn describe(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let what = match e.classify() {
        Category::Io => "cannot be read".to_owned(),
        Category::Syntax => "not valid JSON".to_owned(),
        Category::Eof => "the JSON ends early".to_owned(),
        Category::Data => {
            let text = e.to_string();
            // serde_json appends " at line L column C"; the location is added below.
            let text = text.rsplit_once(" at line ").map_or(text.as_str(), |(t, _)| t);
            let names_a_field = ["missing field `", "duplicate field `", "unknown field `"]
                .iter()
                .find_map(|p| text.strip_prefix(p).map(|rest| (p, rest)));
            match names_a_field {
                Some((p, rest)) => format!("{p}{}`", rest.split('`').next().unwrap_or_default()),
                None => match text.rsplit_once(", expected ") {
                    Some((_, expected)) if !expected.contains(['"', '\'']) => {
                        format!("a value has the wrong type; expected {expected}")
                    }
                    _ => "a value has the wrong type".to_owned(),
                },
            }
        }
    };
    match e.line() {
        0 => what,
        line => format!("{what} (line {line}, column {})", e.column()),
    }
}

pub(super) fn check_dklen(dklen: u64) -> Result<(), KeyError> {
    if dklen == 32 {
        Ok(())
    } else {
        Err(KeyError::KdfParams(format!(
            "kdfparams.dklen = {dklen}; Web3 Secret Storage uses 32"
        )))
    }
}

pub(super) fn decode_salt(text: &str) -> Result<Vec<u8>, KeyError> {
    hex::decode(text).map_err(|_| KeyError::Field {
        field: "crypto.kdfparams.salt",
        problem: "is not hex",
    })
}

pub(super) fn decode_field(text: &str, out: &mut [u8], field: &'static str) -> Result<(), KeyError> {
    hex::decode_to_slice(text, out).map_err(|_| KeyError::Field {
        field,
        problem: if out.len() == 16 {
            "is not 16 bytes of hex"
        } else {
            "is not 32 bytes of hex"
        },
    })
}
