//! Skupper 2.x access grants and their redemption, as pure rules: every row
//! of Skupper's grant server table (statuses and bodies exact), the code
//! checked before anything else, the code never stored, redemptions never
//! over the allowance, and the redeeming side's request and its reading of
//! the answer (the fixture answer made by Skupper's own code included).

use base64::Engine as _;
use proptest::prelude::*;
use skupper_token::claim::FailedAttempt;
use skupper_token::random::SeededRandom;
use skupper_token::site_id::SiteIdError;
use skupper_token::store::StoreError;
use skupper_token::time::{macros::datetime, Duration, OffsetDateTime};
use skupper_token::token::{DecodeError, Endpoint};
use skupper_token::v2::grant::{
    check_name, redemption_names, GrantOptionsError, NameError, RedemptionNames,
    DEFAULT_EXPIRATION_WINDOW, DEFAULT_REDEMPTIONS, GRANT_RECORD_SCHEMA,
};
use skupper_token::v2::redeem::{
    status_text, GrantRequestError, MAX_REFUSAL_BODY_CHARS, REDEEM_TIMEOUT,
};
use skupper_token::v2::{
    AccessCode, AccessToken, GrantError, GrantOptions, GrantRecord, GrantRefused, GrantRequest,
    GrantResponse, GrantState, LinkFile, CODE_LEN,
};

const ACCESS_TOKEN: &str = include_str!("data/v2/v2-access-token.yaml");
const GRANT_RESPONSE: &str = include_str!("data/v2/v2-grant-response.yaml");
const SITE_ID: &str = "0f1e2d3c-site-uid";

const NOW: OffsetDateTime = datetime!(2026-12-01 10:00 UTC);

fn grant(options: &GrantOptions) -> (GrantRecord, AccessCode) {
    GrantRecord::new(options, NOW, &mut SeededRandom::new(5)).unwrap()
}

fn default_grant() -> (GrantRecord, AccessCode) {
    grant(&GrantOptions::new("grant1"))
}

// ---------------------------------------------------------------------------
// Making a grant
// ---------------------------------------------------------------------------

#[test]
fn new_grant_has_skuppers_defaults_an_opaque_id_and_a_24_character_code() {
    let (record, code) = default_grant();
    assert_eq!(record.schema_version, GRANT_RECORD_SCHEMA);
    assert_eq!(record.name, "grant1");
    assert_eq!(record.redemptions_allowed, DEFAULT_REDEMPTIONS);
    assert_eq!(record.redemptions_allowed, 1);
    assert_eq!(record.redemptions_made, 0);
    assert_eq!(DEFAULT_EXPIRATION_WINDOW, Duration::minutes(15));
    assert_eq!(record.expiration_window.to_string(), "15m0s");
    assert_eq!(record.expires_at, datetime!(2026-12-01 10:15 UTC));
    assert_eq!(record.created_at, NOW);
    assert_eq!(record.ca_generation, 0);
    assert_eq!(record.failed_attempts, 0);
    assert_eq!(record.last_failed_attempt, None);
    let id = uuid::Uuid::parse_str(&record.id).expect("the grant id is a UUID");
    assert_eq!(id.get_version_num(), 4);
    assert_eq!(id.to_string(), record.id);
    assert_eq!(code.expose().len(), CODE_LEN);
    assert_eq!(CODE_LEN, 24);
    assert!(code.expose().bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(record.state(NOW), GrantState::Active);
    assert_eq!(record.check(code.expose().as_bytes(), NOW), Ok(()));
}

#[test]
fn the_injected_generator_decides_id_and_code() {
    let (a, code_a) = default_grant();
    let (b, code_b) = default_grant();
    assert_eq!((&a.id, code_a.expose()), (&b.id, code_b.expose()));
    let (c, code_c) =
        GrantRecord::new(&GrantOptions::new("grant1"), NOW, &mut SeededRandom::new(6)).unwrap();
    assert_ne!(a.id, c.id);
    assert_ne!(code_a.expose(), code_c.expose());
    assert_ne!(a.code_key, c.code_key);
}

#[test]
fn options_are_kept() {
    let options = GrantOptions {
        name: "east-grant".into(),
        redemptions_allowed: 3,
        expiration_window: Duration::hours(2),
        ca_generation: 4,
        link_cost: 1,
    };
    let (record, _) = grant(&options);
    assert_eq!(record.redemptions_allowed, 3);
    assert_eq!(record.expiration_window.to_string(), "2h0m0s");
    assert_eq!(record.expires_at, datetime!(2026-12-01 12:00 UTC));
    assert_eq!(record.ca_generation, 4);
}

#[test]
fn zero_redemptions_is_refused_not_unlimited() {
    let options = GrantOptions {
        redemptions_allowed: 0,
        ..GrantOptions::new("grant1")
    };
    let err = GrantRecord::new(&options, NOW, &mut SeededRandom::new(1)).unwrap_err();
    assert_eq!(
        err,
        GrantOptionsError::NoRedemptions {
            name: "grant1".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "grant \"grant1\" would allow 0 redemptions: a Skupper 2.x grant allows at least 1 (0 is not \"unlimited\" in 2.x; it means none left)"
    );
}

#[test]
fn a_stored_grant_allowing_zero_has_none_left() {
    let (mut record, code) = default_grant();
    record.redemptions_allowed = 0;
    assert_eq!(record.state(NOW), GrantState::UsedUp);
    let err = record.check(code.expose().as_bytes(), NOW).unwrap_err();
    assert_eq!(err.http_status(), 404);
    assert_eq!(err.http_body(), "No such access granted\n");
    assert!(matches!(
        record.spent(),
        Err(GrantError::UsedUp { allowed: 0, .. })
    ));
}

#[test]
fn windows_of_zero_or_less_and_too_long_are_refused() {
    for window in [Duration::ZERO, Duration::seconds(-1)] {
        let options = GrantOptions {
            expiration_window: window,
            ..GrantOptions::new("grant1")
        };
        let err = GrantRecord::new(&options, NOW, &mut SeededRandom::new(1)).unwrap_err();
        assert_eq!(
            err,
            GrantOptionsError::NoWindow {
                name: "grant1".into(),
                window
            }
        );
    }
    let err = GrantRecord::new(
        &GrantOptions {
            expiration_window: Duration::MAX,
            ..GrantOptions::new("grant1")
        },
        NOW,
        &mut SeededRandom::new(1),
    )
    .unwrap_err();
    assert!(
        matches!(&err, GrantOptionsError::WindowTooLong { name, .. } if name == "grant1"),
        "{err:?}"
    );
    assert_eq!(
        GrantRecord::new(
            &GrantOptions {
                expiration_window: Duration::ZERO,
                ..GrantOptions::new("grant1")
            },
            NOW,
            &mut SeededRandom::new(1)
        )
        .unwrap_err()
        .to_string(),
        "grant \"grant1\" would expire when it is made: its expiration window is 0s; give a window over 0 (a Skupper 2.x grant always expires)"
    );
}

#[test]
fn grant_names_must_be_object_names() {
    let err = GrantRecord::new(
        &GrantOptions::new("My Grant"),
        NOW,
        &mut SeededRandom::new(1),
    )
    .unwrap_err();
    assert_eq!(
        err,
        GrantOptionsError::InvalidName {
            name: "My Grant".into(),
            source: NameError::BadCharacter {
                character: 'M',
                position: 1
            }
        }
    );
    assert_eq!(
        err.to_string(),
        "grant name \"My Grant\" is not valid: the name has 'M' at position 1; a name holds only lowercase letters, digits, '-' and '.' (a Kubernetes object name)"
    );
}

// ---------------------------------------------------------------------------
// The code: a keyed hash, never the code
// ---------------------------------------------------------------------------

#[test]
fn the_code_is_never_stored_only_its_hmac_sha256_tag() {
    let (record, code) = default_grant();
    let json = serde_json::to_string(&record).unwrap();
    let debug = format!("{record:?}");
    for text in [&json, &debug] {
        assert!(!text.contains(code.expose()), "{text}");
    }
    assert!(!debug.contains(&record.code_key));
    assert!(!debug.contains(&record.code_tag));
    // The tag is HMAC-SHA-256 of the code under the record's own 32-byte key,
    // checked with ring::hmac::verify (constant-time).
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(&record.code_key).unwrap();
    assert_eq!(key.len(), 32);
    let tag = b64.decode(&record.code_tag).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    assert_eq!(
        ring::hmac::verify(&key, code.expose().as_bytes(), &tag),
        Ok(())
    );
    assert!(record.code_matches(code.expose().as_bytes()));
    let mut wrong = code.expose().as_bytes().to_vec();
    wrong[23] ^= 1;
    for attempt in [
        &wrong[..],
        &wrong[..23],
        b"",
        &code.expose().as_bytes()[..23],
    ] {
        assert!(!record.code_matches(attempt));
    }
    // A code with white space around it is another code (Skupper compares
    // the body exactly).
    assert!(!record.code_matches(format!("{}\n", code.expose()).as_bytes()));
}

#[test]
fn records_round_trip_and_later_schemas_are_refused() {
    let (record, _) = grant(&GrantOptions {
        redemptions_allowed: 2,
        ..GrantOptions::new("grant1")
    });
    let record = record.spent().unwrap().with_failed_attempts(
        2,
        Some(&FailedAttempt {
            at: NOW,
            site: SITE_ID.into(),
            reason: "wrong code".into(),
        }),
    );
    let json = serde_json::to_string(&record).unwrap();
    assert!(json.contains("\"schema-version\":1"), "{json}");
    assert!(json.contains("\"expiration-window\":\"15m0s\""), "{json}");
    assert!(
        json.contains("\"expires-at\":\"2026-12-01T10:15:00Z\""),
        "{json}"
    );
    let back: GrantRecord = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.redemptions_made, 1);
    assert_eq!(back.failed_attempts, 2);

    let later = json.replace("\"schema-version\":1", "\"schema-version\":2");
    let err = serde_json::from_str::<GrantRecord>(&later).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("grant record schema version 2; this version reads 1 to 1"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// Every row of Skupper's grant server table
// ---------------------------------------------------------------------------

fn status_and_body(e: &GrantError) -> (u16, String) {
    (e.http_status(), e.http_body())
}

#[test]
fn not_post_is_405() {
    let e = GrantError::NotPost {
        method: "GET".into(),
    };
    assert_eq!(
        status_and_body(&e),
        (405, "Only POST is supported\n".into())
    );
    assert_eq!(
        e.to_string(),
        "grant redemption refused: method GET (only POST is supported)"
    );
    assert!(!e.is_retryable());
}

#[test]
fn unreadable_body_is_400() {
    let (record, _) = default_grant();
    let e = GrantError::BodyNotValid {
        grant: record.id.clone(),
        reason: "connection reset".into(),
    };
    assert_eq!(
        status_and_body(&e),
        (400, "Request body not valid\n".into())
    );
    assert_eq!(
        e.to_string(),
        format!(
            "redemption of grant {:?} refused: the request body could not be read: connection reset",
            record.id
        )
    );
}

#[test]
fn unknown_grant_is_404_no_such_claim() {
    let e = GrantError::NoSuchGrant {
        grant: "035a7829-c135-423b-94aa-46f08d5d5822".into(),
    };
    assert_eq!(status_and_body(&e), (404, "No such claim\n".into()));
    assert_eq!(
        e.to_string(),
        "No such claim: grant \"035a7829-c135-423b-94aa-46f08d5d5822\" does not exist on this site (never issued, or voided when access to the site was revoked)"
    );
    assert!(!e.is_retryable());
}

#[test]
fn expired_grant_is_404_no_such_claim() {
    let (record, code) = default_grant();
    let at = datetime!(2026-12-01 10:15 UTC);
    assert_eq!(
        record.state(at - Duration::nanoseconds(1)),
        GrantState::Active
    );
    assert_eq!(record.state(at), GrantState::Expired);
    let e = record.check(code.expose().as_bytes(), at).unwrap_err();
    assert_eq!(
        e,
        GrantError::Expired {
            grant: record.id.clone(),
            name: "grant1".into(),
            expired_at: at,
            now: at
        }
    );
    assert_eq!(status_and_body(&e), (404, "No such claim\n".into()));
    assert_eq!(
        e.to_string(),
        format!(
            "No such claim: grant \"grant1\" ({}) expired at 2026-12-01T10:15:00Z",
            record.id
        )
    );
    assert_eq!(e.refusal_reason(), Some("expired"));
}

#[test]
fn used_up_grant_is_404_no_such_access_granted() {
    let (record, code) = default_grant();
    let used = record.spent().unwrap();
    assert_eq!(used.redemptions_made, 1);
    assert_eq!(used.state(NOW), GrantState::UsedUp);
    let e = used.check(code.expose().as_bytes(), NOW).unwrap_err();
    assert_eq!(
        e,
        GrantError::UsedUp {
            grant: record.id.clone(),
            name: "grant1".into(),
            allowed: 1
        }
    );
    assert_eq!(
        status_and_body(&e),
        (404, "No such access granted\n".into())
    );
    assert_eq!(
        e.to_string(),
        format!(
            "No such access granted: grant \"grant1\" ({}) has no redemptions left (all 1 allowed were made)",
            record.id
        )
    );
    assert_eq!(e.refusal_reason(), Some("no redemptions left"));
    assert_eq!(used.spent(), Err(e));
}

#[test]
fn wrong_code_is_403() {
    let (record, _) = default_grant();
    let e = record.check(b"qDjNTlhWXkVbesDnBcqs3vQi", NOW).unwrap_err();
    assert_eq!(
        e,
        GrantError::WrongCode {
            grant: record.id.clone(),
            name: "grant1".into()
        }
    );
    assert_eq!(
        status_and_body(&e),
        (403, "Redemption of access token refused\n".into())
    );
    assert_eq!(
        e.to_string(),
        format!(
            "Redemption of access token refused: wrong code for grant \"grant1\" ({})",
            record.id
        )
    );
    assert_eq!(e.refusal_reason(), Some("wrong code"));
    assert!(!e.is_retryable());
}

#[test]
fn status_not_updated_is_503_internal_error() {
    let conflict = GrantError::Conflict {
        grant: "g-id".into(),
        attempts: 16,
    };
    assert_eq!(status_and_body(&conflict), (503, "Internal error\n".into()));
    assert_eq!(
        conflict.to_string(),
        "grant \"g-id\" is being redeemed concurrently through another handle on the site's store (another process): gave up after 16 attempts; try again"
    );
    assert!(conflict.is_retryable());
    let store = GrantError::Store {
        grant: "g-id".into(),
        source: StoreError::Unavailable {
            reason: "cannot write /site/grants/g-id: disk full".into(),
        },
    };
    // The body never shows the store's details.
    assert_eq!(status_and_body(&store), (503, "Internal error\n".into()));
    assert_eq!(
        store.to_string(),
        "grant \"g-id\" could not be redeemed: store unavailable: cannot write /site/grants/g-id: disk full"
    );
    assert!(store.is_retryable());
    assert_eq!(store.refusal_reason(), None);
}

#[test]
fn certificate_not_made_is_500_with_the_error() {
    let e = GrantError::Issue {
        grant: "g-id".into(),
        reason: "the site CA has no key".into(),
    };
    assert_eq!(
        status_and_body(&e),
        (500, "the site CA has no key\n".into())
    );
    assert_eq!(
        e.to_string(),
        "grant \"g-id\" could not be redeemed: making the certificate failed: the site CA has no key"
    );
    assert!(e.is_retryable());
}

#[test]
fn success_checks_and_spends_one_redemption() {
    let (record, code) = grant(&GrantOptions {
        redemptions_allowed: 2,
        ..GrantOptions::new("grant1")
    });
    assert_eq!(record.check(code.expose().as_bytes(), NOW), Ok(()));
    let once = record.spent().unwrap();
    assert_eq!(once.redemptions_made, 1);
    assert_eq!(once.redemptions_left(), 1);
    assert_eq!(once.check(code.expose().as_bytes(), NOW), Ok(()));
    let twice = once.spent().unwrap();
    assert_eq!(twice.redemptions_left(), 0);
    assert!(matches!(
        twice.check(code.expose().as_bytes(), NOW),
        Err(GrantError::UsedUp { allowed: 2, .. })
    ));
    // Everything but the count is unchanged.
    let mut same = twice.clone();
    same.redemptions_made = 0;
    assert_eq!(same, record);
}

#[test]
fn a_wrong_code_is_403_whatever_the_grants_state() {
    let (record, code) = default_grant();
    let expired_at = record.expires_at + Duration::hours(1);
    let used = record.spent().unwrap();
    let mut voided = used.clone();
    voided.redemptions_allowed = 0;
    // Skupper would answer 404 to each of these before looking at the code.
    for (record, now) in [
        (&record, expired_at),
        (&used, NOW),
        (&used, expired_at),
        (&voided, NOW),
    ] {
        let e = record.check(b"not-the-code", now).unwrap_err();
        assert!(matches!(e, GrantError::WrongCode { .. }), "{e:?}");
        assert_eq!(
            status_and_body(&e),
            (403, "Redemption of access token refused\n".into())
        );
        assert_eq!(record.check(b"", now), Err(e));
    }
    // The right code then learns the state.
    assert!(matches!(
        record.check(code.expose().as_bytes(), expired_at),
        Err(GrantError::Expired { .. })
    ));
    assert!(matches!(
        used.check(code.expose().as_bytes(), expired_at),
        Err(GrantError::Expired { .. })
    ));
}

#[test]
fn failed_attempts_are_counted_with_the_latest() {
    let (record, _) = default_grant();
    let first = FailedAttempt {
        at: NOW,
        site: "a".into(),
        reason: "wrong code".into(),
    };
    let second = FailedAttempt {
        at: NOW + Duration::minutes(1),
        site: "b".into(),
        reason: "expired".into(),
    };
    let next = record
        .with_failed_attempts(1, Some(&first))
        .with_failed_attempts(2, Some(&second))
        .with_failed_attempts(0, None);
    assert_eq!(next.failed_attempts, 3);
    assert_eq!(next.last_failed_attempt, Some(second));
}

// ---------------------------------------------------------------------------
// The name and subject headers
// ---------------------------------------------------------------------------

#[test]
fn headers_give_the_name_and_subject() {
    assert_eq!(
        redemption_names("g-id", "grant1", Some("my-link"), Some(SITE_ID)),
        Ok(RedemptionNames {
            name: "my-link".into(),
            subject: SITE_ID.into()
        })
    );
}

#[test]
fn missing_or_empty_headers_fall_back_as_in_skupper() {
    for absent in [None, Some("")] {
        // name -> the grant's name.
        assert_eq!(
            redemption_names("g-id", "grant1", absent, Some(SITE_ID)),
            Ok(RedemptionNames {
                name: "grant1".into(),
                subject: SITE_ID.into()
            })
        );
        // subject -> the name.
        assert_eq!(
            redemption_names("g-id", "grant1", Some("my-link"), absent),
            Ok(RedemptionNames {
                name: "my-link".into(),
                subject: "my-link".into()
            })
        );
        // both -> the grant's name.
        assert_eq!(
            redemption_names("g-id", "grant1", absent, absent),
            Ok(RedemptionNames {
                name: "grant1".into(),
                subject: "grant1".into()
            })
        );
    }
}

#[test]
fn unusable_names_are_400_and_say_only_what_the_caller_sent() {
    let e = redemption_names("g-id", "grant1", Some("../etc"), Some(SITE_ID)).unwrap_err();
    assert_eq!(
        e,
        GrantError::InvalidName {
            grant: "g-id".into(),
            name: "../etc".into(),
            source: NameError::BadCharacter {
                character: '/',
                position: 3
            }
        }
    );
    assert_eq!(
        status_and_body(&e),
        (
            400,
            "Request not valid: the name header is not a usable name: the name has '/' at position 3; a name holds only lowercase letters, digits, '-' and '.' (a Kubernetes object name)\n"
                .into()
        )
    );
    assert_eq!(
        e.to_string(),
        "redemption of grant \"g-id\" refused: the name \"../etc\" (the name header) cannot name a Secret and Links: the name has '/' at position 3; a name holds only lowercase letters, digits, '-' and '.' (a Kubernetes object name)"
    );
    let long = "a".repeat(64);
    assert!(matches!(
        redemption_names("g-id", "grant1", Some(&long), None),
        Err(GrantError::InvalidName {
            source: NameError::TooLong { len: 64 },
            ..
        })
    ));
}

#[test]
fn unusable_subjects_are_400() {
    let e = redemption_names("g-id", "grant1", None, Some("site one")).unwrap_err();
    assert_eq!(
        e,
        GrantError::InvalidSubject {
            grant: "g-id".into(),
            source: SiteIdError::BadCharacter {
                character: ' ',
                position: 5
            }
        }
    );
    assert_eq!(
        status_and_body(&e),
        (
            400,
            "Request not valid: the subject header is not a usable site id: the site id has ' ' at position 5; a site id is printable ASCII: letters, digits and punctuation, no spaces or control characters\n"
                .into()
        )
    );
    assert!(matches!(
        redemption_names("g-id", "grant1", None, Some(&"x".repeat(65))),
        Err(GrantError::InvalidSubject {
            source: SiteIdError::TooLong { len: 65 },
            ..
        })
    ));
    // Every name passes as a subject when the subject falls back to it.
    assert_eq!(check_name(&"a".repeat(63)), Ok(()));
    assert!(redemption_names("g-id", "grant1", Some(&"a".repeat(63)), None).is_ok());
}

// ---------------------------------------------------------------------------
// Redemptions never exceed the allowance
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// A redeemer with the right code or not, at `minutes` after creation:
    /// check, then spend on success (the site's path).
    Redeem { right_code: bool, minutes: i64 },
    /// A spend without a check (a caller that skipped it).
    SpendBlind,
    /// A redeemer that checked an older copy of the record and spends the
    /// current one (a racing redeemer whose compare-and-swap is retried).
    SpendAfterStaleCheck { right_code: bool, back: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<bool>(), 0i64..30).prop_map(|(right_code, minutes)| Op::Redeem { right_code, minutes }),
        1 => Just(Op::SpendBlind),
        2 => (any::<bool>(), 0usize..8).prop_map(|(right_code, back)| Op::SpendAfterStaleCheck { right_code, back }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn redemptions_never_exceed_the_allowance(
        allowed in 1u32..5,
        window in 1i64..20,
        ops in proptest::collection::vec(op(), 0..40),
    ) {
        let (mut record, code) = grant(&GrantOptions {
            redemptions_allowed: allowed,
            expiration_window: Duration::minutes(window),
            ..GrantOptions::new("grant1")
        });
        let right = code.expose().as_bytes().to_vec();
        let mut history = vec![record.clone()];
        let mut successes = 0u32;
        for op in ops {
            let before = record.redemptions_made;
            match op {
                Op::Redeem { right_code, minutes } => {
                    let now = NOW + Duration::minutes(minutes);
                    let attempt: &[u8] = if right_code { &right } else { b"wrong" };
                    match record.check(attempt, now) {
                        Ok(()) => {
                            prop_assert!(right_code);
                            prop_assert!(minutes < window);
                            record = record.spent().expect("a checked grant has a redemption left");
                            successes += 1;
                        }
                        Err(GrantError::WrongCode { .. }) => prop_assert!(!right_code),
                        Err(GrantError::Expired { .. }) => {
                            prop_assert!(right_code);
                            prop_assert!(minutes >= window);
                        }
                        Err(GrantError::UsedUp { allowed: a, .. }) => {
                            prop_assert!(right_code);
                            prop_assert_eq!(a, allowed);
                            prop_assert_eq!(record.redemptions_made, allowed);
                        }
                        Err(other) => prop_assert!(false, "unexpected {other:?}"),
                    }
                }
                Op::SpendBlind => match record.spent() {
                    Ok(next) => record = next,
                    Err(e) => {
                        let used_up = matches!(e, GrantError::UsedUp { .. });
                        prop_assert!(used_up, "{:?}", e);
                        prop_assert_eq!(record.redemptions_made, allowed);
                    }
                },
                Op::SpendAfterStaleCheck { right_code, back } => {
                    let stale = &history[history.len().saturating_sub(back + 1)];
                    let attempt: &[u8] = if right_code { &right } else { b"wrong" };
                    if stale.check(attempt, NOW).is_ok() {
                        if let Ok(next) = record.spent() {
                            record = next;
                        }
                    }
                }
            }
            prop_assert!(record.redemptions_made <= allowed);
            prop_assert!(record.redemptions_made - before <= 1);
            prop_assert_eq!(record.redemptions_left(), allowed - record.redemptions_made);
            history.push(record.clone());
        }
        prop_assert!(successes <= allowed);
    }
}

// ---------------------------------------------------------------------------
// The redeeming side
// ---------------------------------------------------------------------------

#[test]
fn the_request_from_the_fixture_token_is_what_skupper_sends() {
    let token = AccessToken::decode(ACCESS_TOKEN.as_bytes()).unwrap();
    let request = GrantRequest::new(&token, SITE_ID).unwrap();
    assert_eq!(request.method(), "POST");
    assert_eq!(
        request.url,
        "https://127.0.0.1:21461/035a7829-c135-423b-94aa-46f08d5d5822"
    );
    assert_eq!(
        request.endpoint,
        Endpoint {
            host: "127.0.0.1".into(),
            port: 21461
        }
    );
    assert_eq!(request.ca_pem, token.ca_pem);
    assert_eq!(
        request.headers(),
        [("name", "grant1"), ("subject", SITE_ID)]
    );
    assert_eq!(request.body(), b"qDjNTlhWXkVbesDnBcqs3vQi");
    assert_eq!(request.link_cost, 1);
    assert_eq!(REDEEM_TIMEOUT, std::time::Duration::from_secs(10));
    let debug = format!("{request:?}");
    assert!(!debug.contains("qDjNTlhWXkVbesDnBcqs3vQi"), "{debug}");
    assert!(debug.contains("AccessCode(<redacted>)"), "{debug}");
}

#[test]
fn requests_that_the_server_would_refuse_are_not_made() {
    let token = AccessToken::decode(ACCESS_TOKEN.as_bytes()).unwrap();
    let plain = AccessToken {
        url: "http://127.0.0.1:21461/035a7829".into(),
        ..token.clone()
    };
    let err = GrantRequest::new(&plain, SITE_ID).unwrap_err();
    assert!(
        matches!(&err, GrantRequestError::Url { token, source: DecodeError::V2BadField { field, .. } } if token == "grant1" && field == "spec.url"),
        "{err:?}"
    );
    let named = AccessToken {
        name: "Grant_1".into(),
        ..token.clone()
    };
    assert_eq!(
        GrantRequest::new(&named, SITE_ID).unwrap_err(),
        GrantRequestError::Name {
            token: "Grant_1".into(),
            source: NameError::BadCharacter {
                character: 'G',
                position: 1
            }
        }
    );
    let err = GrantRequest::new(&token, "").unwrap_err();
    assert_eq!(
        err,
        GrantRequestError::SiteId {
            token: "grant1".into(),
            site_id: String::new(),
            source: SiteIdError::Empty
        }
    );
    assert_eq!(
        err.to_string(),
        "AccessToken \"grant1\" cannot be redeemed by site \"\": its id cannot name a certificate: the site id is empty"
    );
}

#[test]
fn the_fixture_answer_gives_the_link_with_the_tokens_cost() {
    let token = AccessToken::decode(ACCESS_TOKEN.as_bytes()).unwrap();
    let request = GrantRequest::new(&token, SITE_ID).unwrap();
    let links = request
        .response()
        .interpret(200, GRANT_RESPONSE.as_bytes())
        .unwrap();
    let mut expected = LinkFile::decode(GRANT_RESPONSE.as_bytes()).unwrap();
    assert_eq!(expected.links[0].cost, 0, "the answer gives no cost");
    expected.links[0].cost = 1;
    assert_eq!(links, expected);
    assert_eq!(links.secret.name, "my-link");
    assert_eq!(links.links[0].name, "my-link");
    assert_eq!(links.links[0].tls_credentials, "my-link");
    assert_eq!(links.links[0].endpoints[0].port, 21462);

    // A linkCost of 0 keeps the server's costs.
    let free = GrantResponse { link_cost: 0 };
    let kept = free.interpret(200, GRANT_RESPONSE.as_bytes()).unwrap();
    assert_eq!(kept.links[0].cost, 0);
    let costly = GrantResponse { link_cost: 7 };
    let mut served = LinkFile::decode(GRANT_RESPONSE.as_bytes()).unwrap();
    served.links[0].cost = 3;
    let body = served.encode_grant_response();
    assert_eq!(
        free.interpret(200, body.as_bytes()).unwrap().links[0].cost,
        3
    );
    assert_eq!(
        costly.interpret(200, body.as_bytes()).unwrap().links[0].cost,
        7
    );
}

#[test]
fn a_grant_redeemed_end_to_end_through_the_pure_pieces() {
    // The issuing site makes a grant and writes the AccessToken.
    let (record, code) = grant(&GrantOptions {
        redemptions_allowed: 2,
        ..GrantOptions::new("grant1")
    });
    let served = LinkFile::decode(GRANT_RESPONSE.as_bytes()).unwrap();
    let fixture = AccessToken::decode(ACCESS_TOKEN.as_bytes()).unwrap();
    let token = AccessToken {
        name: record.name.clone(),
        ca_pem: fixture.ca_pem.clone(),
        code,
        link_cost: 4,
        url: format!("https://127.0.0.1:21461/{}", record.id),
    };
    let token = AccessToken::decode(token.encode().as_bytes()).unwrap();

    // The redeeming site makes the request ...
    let request = GrantRequest::new(&token, SITE_ID).unwrap();
    assert!(request.url.ends_with(&format!("/{}", record.id)));

    // ... the grant server reads it ...
    let [(_, name), (_, subject)] = request.headers();
    let names = redemption_names(&record.id, &record.name, Some(name), Some(subject)).unwrap();
    assert_eq!(names.subject, SITE_ID);
    assert_eq!(names.name, "grant1");
    record.check(request.body(), NOW).unwrap();
    let record = record.spent().unwrap();
    assert_eq!(record.redemptions_made, 1);
    let mut answer = served.clone();
    answer.secret.name = names.name.clone();
    for link in &mut answer.links {
        link.name = names.name.clone();
        link.tls_credentials = names.name.clone();
    }

    // ... and its answer gives the Links with the token's cost.
    let links = request
        .response()
        .interpret(200, answer.encode_grant_response().as_bytes())
        .unwrap();
    assert_eq!(links.secret.name, "grant1");
    assert_eq!(links.links.len(), 1);
    assert_eq!(links.links[0].cost, 4);
    assert_eq!(links.links[0].endpoints, served.links[0].endpoints);

    // A refusal comes back as Skupper records it.
    let refused = record.check(b"guess", NOW).unwrap_err();
    let err = request
        .response()
        .interpret(refused.http_status(), refused.http_body().as_bytes())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Controller got failed response: 403 (Forbidden) Redemption of access token refused"
    );
}

#[test]
fn refusals_read_as_skupper_records_them() {
    let response = GrantResponse { link_cost: 1 };
    let cases: [(u16, &str, &str); 7] = [
        (
            404,
            "No such claim\n",
            "Controller got failed response: 404 (Not Found) No such claim",
        ),
        (
            404,
            "No such access granted\n",
            "Controller got failed response: 404 (Not Found) No such access granted",
        ),
        (
            403,
            "Redemption of access token refused\n",
            "Controller got failed response: 403 (Forbidden) Redemption of access token refused",
        ),
        (
            405,
            "Only POST is supported\n",
            "Controller got failed response: 405 (Method Not Allowed) Only POST is supported",
        ),
        (
            400,
            "Request body not valid\n",
            "Controller got failed response: 400 (Bad Request) Request body not valid",
        ),
        (
            503,
            "Internal error\n",
            "Controller got failed response: 503 (Service Unavailable) Internal error",
        ),
        (
            500,
            "the site CA has no key\n",
            "Controller got failed response: 500 (Internal Server Error) the site CA has no key",
        ),
    ];
    for (status, body, message) in cases {
        let err = response.interpret(status, body.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            GrantRefused::Refused {
                status,
                body: body.trim_end().to_owned()
            }
        );
        assert_eq!(err.to_string(), message);
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.is_retryable(), status >= 500, "{status}");
    }
    // A redirect is not followed: it is a refusal, and final.
    let err = response.interpret(302, b"").unwrap_err();
    assert_eq!(
        err.to_string(),
        "Controller got failed response: 302 (Found) "
    );
    assert!(!err.is_retryable());
    // A status Go has no text for.
    assert_eq!(status_text(599), "");
    assert_eq!(
        response.interpret(599, b"x").unwrap_err().to_string(),
        "Controller got failed response: 599 () x"
    );
}

#[test]
fn long_or_binary_refusal_bodies_are_cut_and_made_text() {
    let response = GrantResponse { link_cost: 0 };
    let long = "é".repeat(MAX_REFUSAL_BODY_CHARS + 10);
    let GrantRefused::Refused { body, .. } = response.interpret(500, long.as_bytes()).unwrap_err()
    else {
        panic!("a refusal")
    };
    assert_eq!(body, format!("{}...", "é".repeat(MAX_REFUSAL_BODY_CHARS)));
    let GrantRefused::Refused { body, .. } =
        response.interpret(500, b"\xff\xfe oops \n").unwrap_err()
    else {
        panic!("a refusal")
    };
    assert_eq!(body, "\u{fffd}\u{fffd} oops");
}

#[test]
fn a_200_that_is_not_a_link_file_is_undecodable_and_final() {
    let response = GrantResponse { link_cost: 1 };
    for body in [&b""[..], b"not yaml: [", ACCESS_TOKEN.as_bytes()] {
        let err = response.interpret(200, body).unwrap_err();
        assert!(matches!(err, GrantRefused::Undecodable { .. }), "{err:?}");
        assert_eq!(err.to_string(), "Controller could not decode response");
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(err.status(), None);
        assert!(!err.is_retryable());
    }
    // The Secret alone (no Link) is not enough.
    let secret_only = GRANT_RESPONSE.split("\n---\n").next().unwrap();
    assert_eq!(
        response.interpret(200, secret_only.as_bytes()).unwrap_err(),
        GrantRefused::Undecodable {
            source: DecodeError::V2NoLinks
        }
    );
}
