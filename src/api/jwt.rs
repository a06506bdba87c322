//! `auxData.jwt`: verifying a request's JWT and exposing its claims.
//!
//! Key sets come from `auxData.jwt.keySets` in the config (a JWKS, or a PEM
//! key, embedded or in a file), loaded once at cold start. A token is checked
//! against the key set it names (`keySetId`), or against the only one
//! configured. `exp` and `nbf` are enforced with `acceptableTimeSkew` of
//! leeway. Tokens never reach logs.

use std::collections::BTreeMap;

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::err::ApiError;
use crate::config::{JwtConfig, LocalKeySet};

type Claims = serde_json::Map<String, serde_json::Value>;

/// A verification key, with the key id and algorithm it is for.
struct Key {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

/// Verifies tokens against the configured key sets.
pub struct JwtVerifier {
    key_sets: BTreeMap<String, Vec<Key>>,
    disable_verification: bool,
    leeway_seconds: u64,
}

/// Why the configured key sets could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("auxData.jwt.keySets[{id}]: {message}")]
pub struct KeySetError {
    /// The key set id.
    pub id: String,
    /// What is wrong.
    pub message: String,
}

impl JwtVerifier {
    /// Loads the key sets of the config.
    pub fn from_config(config: &JwtConfig) -> Result<JwtVerifier, KeySetError> {
        let mut key_sets = BTreeMap::new();
        for set in &config.key_sets {
            let fail = |message: String| KeySetError {
                id: set.id.clone(),
                message,
            };
            let local = set
                .local
                .as_ref()
                .ok_or_else(|| fail("only local key sets are supported".to_string()))?;
            let keys = load_local(local).map_err(fail)?;
            key_sets.insert(set.id.clone(), keys);
        }
        Ok(JwtVerifier {
            key_sets,
            disable_verification: config.disable_verification,
            leeway_seconds: config.acceptable_time_skew.map_or(0, |d| d.as_secs()),
        })
    }

    /// The token's claims, once it has verified.
    pub fn claims(&self, token: &str, key_set_id: Option<&str>) -> Result<Claims, ApiError> {
        if self.disable_verification {
            return jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
                .map(|data| data.claims)
                .map_err(|e| ApiError::invalid(format!("auxData.jwt.token: invalid token: {e}")));
        }
        let keys = match key_set_id.filter(|id| !id.is_empty()) {
            Some(id) => self.key_sets.get(id).ok_or_else(|| {
                ApiError::invalid(format!("auxData.jwt.keySetId: unknown key set {id:?}"))
            })?,
            None => match self.key_sets.values().collect::<Vec<_>>().as_slice() {
                [only] => *only,
                [] => {
                    return Err(ApiError::invalid(
                        "auxData.jwt: no key sets are configured to verify tokens (auxData.jwt.keySets)",
                    ))
                }
                _ => {
                    return Err(ApiError::invalid(
                        "auxData.jwt.keySetId: required when several key sets are configured",
                    ))
                }
            },
        };
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::invalid(format!("auxData.jwt.token: invalid token: {e}")))?;
        let candidates = keys.iter().filter(|k| {
            k.algorithms.contains(&header.alg)
                && match (&header.kid, &k.kid) {
                    (Some(wanted), Some(have)) => wanted == have,
                    _ => true,
                }
        });
        let mut last_error = None;
        for key in candidates {
            let mut validation = Validation::new(header.alg);
            validation.leeway = self.leeway_seconds;
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last_error = Some(e),
            }
        }
        Err(ApiError::unauthenticated(match last_error {
            Some(e) => format!("auxData.jwt.token: failed to verify token: {e}"),
            None => {
                "auxData.jwt.token: no key in the key set matches the token's algorithm and key id"
                    .to_string()
            }
        }))
    }
}

fn load_local(local: &LocalKeySet) -> Result<Vec<Key>, String> {
    let bytes = match (&local.data, &local.file) {
        (Some(data), None) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| format!("local.data is not base64: {e}"))?,
        (None, Some(file)) => std::fs::read(file)
            .map_err(|e| format!("cannot read local.file {}: {e}", file.display()))?,
        _ => return Err("set exactly one of local.data and local.file".to_string()),
    };
    if local.pem {
        return pem_key(&bytes).map(|k| vec![k]);
    }
    let set: JwkSet =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
    set.keys
        .iter()
        .map(|jwk| {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
            let algorithms = match jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
            {
                Some(alg) => vec![alg],
                None => algorithms_for(&key),
            };
            Ok(Key {
                kid: jwk.common.key_id.clone(),
                algorithms,
                key,
            })
        })
        .collect()
}

fn algorithms_for(key: &DecodingKey) -> Vec<Algorithm> {
    use jsonwebtoken::AlgorithmFamily;
    let all = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];
    let family: AlgorithmFamily = key.family();
    all.into_iter().filter(|a| a.family() == family).collect()
}

/// Parses a PEM public key of one family.
type PemParser = fn(&[u8]) -> jsonwebtoken::errors::Result<DecodingKey>;

fn pem_key(pem: &[u8]) -> Result<Key, String> {
    let attempts: [(PemParser, &[Algorithm]); 3] = [
        (
            DecodingKey::from_rsa_pem,
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ),
        (
            DecodingKey::from_ec_pem,
            &[Algorithm::ES256, Algorithm::ES384],
        ),
        (DecodingKey::from_ed_pem, &[Algorithm::EdDSA]),
    ];
    attempts
        .iter()
        .find_map(|(parse, algorithms)| {
            parse(pem).ok().map(|key| Key {
                kid: None,
                algorithms: algorithms.to_vec(),
                key,
            })
        })
        .ok_or_else(|| "not an RSA, EC or Ed25519 public key in PEM form".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &[u8] = b"a-test-secret-that-is-long-enough";

    fn hmac_config(id: &str) -> JwtConfig {
        let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256",
            "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET)}]});
        JwtConfig {
            key_sets: vec![crate::config::KeySet {
                id: id.to_string(),
                local: Some(LocalKeySet {
                    data: Some(base64::engine::general_purpose::STANDARD.encode(jwks.to_string())),
                    file: None,
                    pem: false,
                }),
                remote: None,
            }],
            ..JwtConfig::default()
        }
    }

    fn token(claims: serde_json::Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_string());
        encode(&header, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn future() -> u64 {
        jsonwebtoken::get_current_timestamp() + 3600
    }

    #[test]
    fn a_valid_token_yields_its_claims() {
        let verifier = JwtVerifier::from_config(&hmac_config("main")).unwrap();
        let claims = verifier
            .claims(
                &token(json!({"sub": "alice", "exp": future()}), "k1"),
                Some("main"),
            )
            .unwrap();
        assert_eq!(claims["sub"], "alice");
        let again = verifier
            .claims(&token(json!({"sub": "bob", "exp": future()}), "k1"), None)
            .unwrap();
        assert_eq!(again["sub"], "bob");
    }

    #[test]
    fn expired_forged_and_unknown_are_refused() {
        let verifier = JwtVerifier::from_config(&hmac_config("main")).unwrap();
        let expired = token(json!({"sub": "alice", "exp": 1000}), "k1");
        assert!(verifier
            .claims(&expired, None)
            .unwrap_err()
            .message
            .contains("failed to verify"));
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "mallory", "exp": future()}),
            &EncodingKey::from_secret(b"another-secret-another-secret!!"),
        )
        .unwrap();
        assert!(verifier.claims(&forged, None).is_err());
        assert!(verifier.claims("not.a.jwt", None).is_err());
        let err = verifier
            .claims(&token(json!({"exp": future()}), "k1"), Some("other"))
            .unwrap_err();
        assert!(err.message.contains("unknown key set"));
    }

    #[test]
    fn verification_can_be_disabled() {
        let verifier = JwtVerifier::from_config(&JwtConfig {
            disable_verification: true,
            ..JwtConfig::default()
        })
        .unwrap();
        let claims = verifier
            .claims(&token(json!({"iss": "cerbos"}), "any"), None)
            .unwrap();
        assert_eq!(claims["iss"], "cerbos");
    }

    #[test]
    fn no_key_sets_means_tokens_cannot_verify() {
        let verifier = JwtVerifier::from_config(&JwtConfig::default()).unwrap();
        let err = verifier.claims(&token(json!({}), "k1"), None).unwrap_err();
        assert!(err.message.contains("no key sets are configured"));
    }
}
