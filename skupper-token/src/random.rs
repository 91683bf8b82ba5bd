//! Injected randomness.
//!
//! The core never reads OS randomness. Every operation that needs random
//! bytes (passwords, claim names, serial numbers, private keys) takes a
//! `&mut dyn Random`. Production code passes an OS-backed CSPRNG (the CLI
//! wraps `ring::rand::SystemRandom`); tests and harnesses pass
//! [`SeededRandom`] so that runs repeat exactly.

use ring::digest;

/// A cryptographically secure source of random bytes, injected by the caller.
///
/// Implementations must be CSPRNGs: the bytes become private keys and claim
/// passwords.
pub trait Random {
    /// Fills `dest` entirely with random bytes.
    fn fill(&mut self, dest: &mut [u8]);
}

impl<R: Random + ?Sized> Random for &mut R {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest)
    }
}

impl<R: Random + ?Sized> Random for Box<R> {
    fn fill(&mut self, dest: &mut [u8]) {
        (**self).fill(dest)
    }
}

/// A deterministic generator for tests and harnesses: SHA-512 in counter mode
/// over a seed. The same seed gives the same bytes on every run and platform.
///
/// Its output is unpredictable to anyone who does not know the seed, but the
/// seed is usually a small constant in a test: never use it for real sites.
#[derive(Clone)]
pub struct SeededRandom {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

impl SeededRandom {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        Self::from_seed(s)
    }

    /// A generator from a full 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        SeededRandom {
            seed,
            counter: 0,
            block: [0; 64],
            used: 64,
        }
    }

    fn refill(&mut self) {
        let mut ctx = digest::Context::new(&digest::SHA512);
        ctx.update(b"skupper-token seeded random v1");
        ctx.update(&self.seed);
        ctx.update(&self.counter.to_le_bytes());
        self.block.copy_from_slice(ctx.finish().as_ref());
        self.counter += 1;
        self.used = 0;
    }
}

impl std::fmt::Debug for SeededRandom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeededRandom")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl Random for SeededRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        let mut off = 0;
        while off < dest.len() {
            if self.used == self.block.len() {
                self.refill();
            }
            let n = (self.block.len() - self.used).min(dest.len() - off);
            dest[off..off + n].copy_from_slice(&self.block[self.used..self.used + n]);
            self.used += n;
            off += n;
        }
    }
}

/// The 62 characters a claim password is drawn from.
pub const PASSWORD_ALPHABET: &[u8; 62] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Length of a claim password, as in Skupper.
pub const PASSWORD_LEN: usize = 24;

/// Draws a claim password: [`PASSWORD_LEN`] characters from
/// [`PASSWORD_ALPHABET`], each uniform (rejection sampling, no modulo bias).
pub fn password(rng: &mut dyn Random) -> String {
    let mut out = String::with_capacity(PASSWORD_LEN);
    let mut buf = [0u8; 32];
    while out.len() < PASSWORD_LEN {
        rng.fill(&mut buf);
        for &b in &buf {
            // 248 = 4 * 62: accepting only bytes below it keeps `b % 62` uniform.
            if b < 248 && out.len() < PASSWORD_LEN {
                out.push(PASSWORD_ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// A random (version 4) UUID from the injected generator.
pub fn uuid_v4(rng: &mut dyn Random) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_random_repeats_and_differs_by_seed() {
        let (mut a, mut b, mut c) = (
            SeededRandom::new(7),
            SeededRandom::new(7),
            SeededRandom::new(8),
        );
        let (mut x, mut y, mut z) = ([0u8; 100], [0u8; 100], [0u8; 100]);
        a.fill(&mut x);
        b.fill(&mut y[..33]);
        b.fill(&mut y[33..]);
        c.fill(&mut z);
        assert_eq!(x, y, "split reads give the same stream");
        assert_ne!(x, z);
    }

    #[test]
    fn password_is_24_chars_from_alphabet_and_roughly_uniform() {
        let mut rng = SeededRandom::new(1);
        let mut counts = [0u32; 62];
        for _ in 0..2000 {
            let p = password(&mut rng);
            assert_eq!(p.len(), PASSWORD_LEN);
            for ch in p.bytes() {
                let i = PASSWORD_ALPHABET
                    .iter()
                    .position(|&a| a == ch)
                    .expect("alphabet");
                counts[i] += 1;
            }
        }
        // 48,000 draws over 62 symbols: about 774 each. Modulo bias over
        // plain bytes would give the first 8 symbols ~25% more.
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 650 && *max < 900, "counts {min}..{max}");
    }

    #[test]
    fn uuid_is_v4() {
        let u = uuid_v4(&mut SeededRandom::new(3));
        assert_eq!(u.get_version_num(), 4);
    }
}
