//! Each family of site operations fails with its own error type, whose
//! message names what is involved.

use skupper_token::site::{OpenError, Site, SiteError};
use skupper_token::store::MemoryStore;

#[test]
fn opening_an_empty_store_says_no_site_was_created() {
    let err = Site::open(MemoryStore::new()).unwrap_err();
    assert_eq!(err, OpenError::NotInitialized);
    assert_eq!(
        err.to_string(),
        "no site has been created here yet: create one first"
    );
    // A caller that opens a site as one step of a site operation carries it
    // as a SiteError.
    assert_eq!(SiteError::from(err), SiteError::NotInitialized);
}
