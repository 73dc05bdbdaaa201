//! Cost of `JwtVerifier::verify` for a cache hit (a producer's repeated token: SHA-256 + map
//! lookup) against a miss (header parse + signature check + claims), for RS256 and ES256.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use event_processor_core::auth::{JwtVerifier, jwks_for, mint};

const RSA: &[u8] = include_bytes!("../tests/keys/rsa-a.pem");
const EC: &[u8] = include_bytes!("../tests/keys/ec-a.pem");

fn setup(pem: &[u8], capacity: u64) -> (JwtVerifier, String) {
    let jwks = serde_json::to_vec(&jwks_for(pem, "k").unwrap()).unwrap();
    let verifier = JwtVerifier::new(&jwks, "https://issuer.test/", "event-processor")
        .unwrap()
        .with_cache_capacity(capacity);
    let scopes = "SpongeBob:send SpongeBob:register";
    let token = mint(
        pem,
        "k",
        "https://issuer.test/",
        "event-processor",
        scopes,
        Duration::from_secs(3600),
    )
    .unwrap();
    (verifier, format!("Bearer {token}"))
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify");
    for (name, pem) in [("rs256", RSA), ("es256", EC)] {
        let (hit, header) = setup(pem, 10_000);
        hit.verify(Some(&header)).unwrap();
        group.bench_function(format!("{name}/cache_hit"), |b| {
            b.iter(|| hit.verify(black_box(Some(&header))).unwrap())
        });
        // Capacity 0: every call takes the full path, as the first request with a token does.
        let (miss, header) = setup(pem, 0);
        group.bench_function(format!("{name}/cache_miss"), |b| {
            b.iter(|| miss.verify(black_box(Some(&header))).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
