//! The HTTPS listener's certificates: chosen by SNI from the current snapshot, swapped with it.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::CertEntry;

#[derive(Debug, Default)]
struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` stored as `example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For clients that send no SNI: the first certificate.
    default: Option<Arc<CertifiedKey>>,
}

/// Resolves server certificates by SNI; replaced whole on every applied snapshot.
#[derive(Debug, Default)]
pub struct SniResolver {
    store: ArcSwap<CertStore>,
}

impl SniResolver {
    pub fn replace(&self, entries: &[CertEntry]) {
        let mut store = CertStore::default();
        for entry in entries {
            for name in &entry.server_names {
                match name.strip_prefix("*.") {
                    Some(suffix) => store.wildcard.insert(suffix.to_string(), entry.key.clone()),
                    None => store.exact.insert(name.clone(), entry.key.clone()),
                };
            }
            if store.default.is_none() {
                store.default = Some(entry.key.clone());
            }
        }
        self.store.store(Arc::new(store));
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let store = self.store.load();
        let Some(name) = hello.server_name() else {
            return store.default.clone();
        };
        let name = name.to_ascii_lowercase();
        if let Some(key) = store.exact.get(&name) {
            return Some(key.clone());
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(key) = store.wildcard.get(parent) {
                return Some(key.clone());
            }
        }
        store.default.clone()
    }
}

/// The rustls server configuration of the HTTPS listener (ALPN h2 and http/1.1).
pub fn server_config(
    resolver: Arc<SniResolver>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
