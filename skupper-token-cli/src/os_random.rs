//! The operating system's random source, as the core's [`Random`].
//!
//! The core crate takes its randomness as an argument (a `&mut dyn Random`)
//! so that tests can repeat exactly. Real sites pass [`OsRandom`]: private
//! keys, claim passwords, claim names and serial numbers all come from it.

use ring::rand::{SecureRandom as _, SystemRandom};
use skupper_token::random::Random;

/// The OS CSPRNG (`getrandom` on Linux), through `ring`.
#[derive(Debug, Clone)]
pub struct OsRandom(SystemRandom);

impl OsRandom {
    /// The OS random source. Cheap: it holds no state.
    pub fn new() -> OsRandom {
        OsRandom(SystemRandom::new())
    }
}

impl Default for OsRandom {
    fn default() -> Self {
        OsRandom::new()
    }
}

impl Random for OsRandom {
    /// Fills `dest` from the OS.
    ///
    /// # Panics
    ///
    /// If the OS random source fails. On the systems `ring` supports that
    /// happens only when the kernel cannot provide randomness at all;
    /// continuing would mean issuing keys and passwords that are not
    /// random, so stopping is the safe direction.
    fn fill(&mut self, dest: &mut [u8]) {
        self.0
            .fill(dest)
            .expect("the operating system's random source failed: refusing to make keys or passwords without it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_with_bytes_that_differ() {
        let mut rng = OsRandom::new();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        rng.fill(&mut a);
        rng.fill(&mut b);
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
        rng.fill(&mut []);
    }

    #[test]
    fn makes_passwords_through_the_core() {
        let p = skupper_token::random::password(&mut OsRandom::new());
        assert_eq!(p.len(), skupper_token::random::PASSWORD_LEN);
    }
}
